"""Fast batched sampling of expressions from ``<bos>``, with a KV cache and continuous batching.

Every sequence starts from ``<bos>`` alone, and a sequence that emits ``<eos>`` (or reaches the length cap)
leaves its batch row at once, so the work follows the mean sample length, not the longest. On a GPU the row is
given to the next sequence, which starts from ``<bos>`` at position 0 in the same step (continuous batching):
every step decodes a full batch until no sequence is left to start, and only the last batch shrinks. Rows are
then at different positions, so each attends to its own cached positions only (a length mask). On a CPU a
step costs in proportion to its rows, so batches run one after the other and shrink (swap-remove), which
measured faster there than refilling with its full-size cache.
The decoding forward is GPT-2's, written out for one token per row over a preallocated cache (the
model's own modules do the work), which avoids the per-step concatenation of a growing cache.
Each sequence is still sampled exactly as ``model.generate(do_sample=True)`` would sample it
(temperature, then top-k, then top-p, as the ``transformers`` logits warpers do). Beside each sample the
sampler returns its log-probability under the model at temperature 1, without warping (the sum over its
generated tokens, ``<eos>`` included, of ``log p(token | prefix)`` from the same logits), at no extra forward
pass: the model's own score of its sample (``select: likelihood``; divided by the tokens, the NLL per token).

Under ``accelerate launch`` the ``num_samples`` are split across processes (the first
``num_samples % N`` processes draw one more), each process seeds its own generator from
``(seed, process_index)``, and every process returns the full gathered result in rank order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import gather_object
from transformers import GPT2LMHeadModel

from scl_hf.config import SamplingConfig


@dataclass
class SampleResult:
    """Samples in a deterministic order (rank 0's, then rank 1's, ...)."""

    texts: list[str]  # decoded generated tokens, without <bos> and <eos>
    truncated: list[bool]  # True where the sequence hit the length cap before <eos>
    total_tokens: int  # generated tokens of all samples, <eos> included, all processes together
    seconds: float
    logprobs: list[float]  # each sample's log-probability (nats) under the model at temperature 1
    token_counts: list[int]  # each sample's generated tokens, <eos> included (what its logprob sums over)


def process_seed(seed: int, process_index: int) -> int:
    """A 63-bit seed for ``(seed, process_index)`` that no other pair shares by construction (SeedSequence)."""
    return int(np.random.SeedSequence([seed, process_index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def shard_size(num_samples: int, process_index: int, num_processes: int) -> int:
    """How many of ``num_samples`` process ``process_index`` draws; the shards add up to ``num_samples``."""
    return num_samples // num_processes + (process_index < num_samples % num_processes)


def warp_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p filtering of ``(batch, vocab)`` logits, as ``transformers`` does it."""
    logits = logits / temperature
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    if top_p < 1.0:
        # drop the least likely tokens whose total probability is at most 1 - top_p; keep at least one
        sorted_logits, sorted_idx = torch.sort(logits, descending=False, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[:, -1] = False
        logits = logits.masked_fill(remove.scatter(1, sorted_idx, remove), -float("inf"))
    return logits


class KVCache:
    """Keys and values of the sequences still decoding: ``(layers, 2, rows, heads, capacity, head_dim)``.

    Rows ``[:n]`` are live. The time axis grows by doubling, so a batch that stops early never holds
    ``n_positions`` slots per row; a finished row is overwritten by the last live one (swap-remove), so
    compaction copies one row per finished sequence instead of the whole batch.
    """

    def __init__(self, layers: int, rows: int, heads: int, head_dim: int, max_len: int, device, dtype,
                 zeroed: bool = False) -> None:
        self.max_len = max_len
        # zeroed: rows at different positions attend over slots they never wrote (masked out), and masked garbage
        # must still be finite (0 x NaN is NaN). Else empty: zeroing gigabytes of cache costs seconds on a CPU.
        self.new = torch.zeros if zeroed else torch.empty
        self.data = self.new(layers, 2, rows, heads, min(64, max_len), head_dim, device=device, dtype=dtype)

    def reserve(self, length: int, rows: int) -> None:
        """Make room for ``length`` positions, keeping the first ``rows`` rows."""
        capacity = self.data.shape[4]
        if length <= capacity:
            return
        while capacity < length:
            capacity = min(2 * capacity, self.max_len)
        grown = self.new(*self.data.shape[:4], capacity, self.data.shape[5], device=self.data.device,
                         dtype=self.data.dtype)
        grown[:, :, :rows, :, : self.data.shape[4]] = self.data[:, :, :rows]
        self.data = grown

    def move_rows(self, src: torch.Tensor, dst: torch.Tensor, length: int) -> None:
        """Copy rows ``src`` over rows ``dst`` (the first ``length`` positions)."""
        self.data[:, :, dst, :, :length] = self.data[:, :, src, :, :length]


def _decode_step(model, cache: KVCache, tokens: torch.Tensor, positions: torch.Tensor, span: int,
                 aligned: bool) -> torch.Tensor:
    """Logits ``(n, vocab)`` after feeding ``tokens`` ``(n,)`` at ``positions`` ``(n,)`` to the first ``n`` cache
    rows; ``span`` = ``max(positions) + 1``, ``aligned``: every row is at the same position.

    The GPT-2 forward written out for one new token per row, reusing the model's own modules (so
    every config option of the blocks applies) with attention over the preallocated cache. A row attends to
    its own positions ``0..positions[row]`` only: rows that started later are shorter, and the slots beyond a
    row's position hold a finished sequence's keys, masked out.
    """
    gpt = model.transformer
    n = tokens.shape[0]
    rows = torch.arange(n, device=tokens.device)
    x = gpt.wte(tokens) + gpt.wpe(positions)  # (n, n_embd)
    # one query per row over the cached positions: no causal mask, only each row's own length. Unaligned rows
    # use a hand-written attention: SDPA given a mask copies the strided cache slice every step, while batched
    # matrix products read it in place ((rows, heads) merge into one batch dimension of the cache's layout).
    if not aligned:
        bias = torch.zeros(n, span, device=tokens.device, dtype=torch.float32)
        bias.masked_fill_(torch.arange(span, device=tokens.device) > positions[:, None], -float("inf"))
    for layer, block in enumerate(gpt.h):
        attn = block.attn
        heads, d = attn.num_heads, attn.head_dim
        q, k, v = attn.c_attn(block.ln_1(x)).view(n, 3, heads, d).unbind(1)  # (n, heads, d)
        cache.data[layer, 0, rows, :, positions] = k
        cache.data[layer, 1, rows, :, positions] = v
        keys = cache.data[layer, 0, :n, :, :span]  # (n, heads, span, d)
        values = cache.data[layer, 1, :n, :, :span]
        if aligned:
            y = F.scaled_dot_product_attention(q.unsqueeze(2), keys, values, scale=attn.scaling)
        else:
            scores = torch.bmm(keys.reshape(n * heads, span, d), q.reshape(n * heads, d, 1)).view(n, heads, span)
            weights = (scores.float() * attn.scaling + bias[:, None, :]).softmax(dim=-1).to(values.dtype)
            y = torch.bmm(weights.view(n * heads, 1, span), values.reshape(n * heads, span, d))
        x = x + attn.c_proj(y.reshape(n, -1))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(gpt.ln_f(x))


@torch.no_grad()
def sample_token_ids(model, num_sequences: int, bos_token_id: int, eos_token_id: int, max_new_tokens: int,
                     cfg: SamplingConfig, generator: torch.Generator, batch_size: int | None = None,
                     refill: bool = False, on_step: Callable[[int], None] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample ``num_sequences`` continuations of ``<bos>``, ``batch_size`` (default: all) at a time.

    ``refill``: a row whose sequence ends starts the next sequence at once (continuous batching), so every step
    decodes a full batch until no sequence is left to start; then finished rows leave (swap-remove) and the last
    ones shrink the batch. Else batch after batch, each shrinking as its rows finish. Sequences are numbered in
    the order they start; each is sampled token by token from its own prefix, as
    ``model.generate(do_sample=True)`` samples it. ``on_step(finished)``, when given, is called after every
    decoding step with the number of sequences finished so far (benchmarks time the tail with it).

    Returns:
        ``(tokens, lengths, logprobs)`` on the CPU: ``tokens`` is ``(num_sequences, max_new_tokens)``, valid up to
        ``lengths`` (the generated tokens, ``<eos>`` included when one was drawn); ``logprobs`` (float64) is each
        sequence's log-probability at temperature 1 (unwarped logits) over those tokens.
    """
    config = model.config
    device = model.lm_head.weight.device
    batch = min(num_sequences, batch_size or num_sequences)
    if batch < num_sequences and not refill:  # batch after batch, one generator
        parts, first = [], 0
        while first < num_sequences:
            count = min(batch, num_sequences - first)
            step = None if on_step is None else (lambda done, base=first: on_step(base + done))
            parts.append(sample_token_ids(model, count, bos_token_id, eos_token_id, max_new_tokens, cfg, generator,
                                          on_step=step))
            first += count
        return tuple(torch.cat(tensors) for tensors in zip(*parts, strict=True))
    # keys and values come out of the projections in the autocast dtype when one is active (bf16 on GPUs)
    dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else model.dtype
    cache = KVCache(config.n_layer, batch, config.n_head, config.n_embd // config.n_head, max_new_tokens,
                    device, dtype, zeroed=batch < num_sequences)
    out = torch.zeros(num_sequences, max_new_tokens, dtype=torch.long, device=device)
    lengths = torch.full((num_sequences,), max_new_tokens, dtype=torch.long, device=device)
    logprobs = torch.zeros(num_sequences, dtype=torch.float64, device=device)
    seq = torch.arange(batch, device=device)  # the sequence each live row decodes
    pos = torch.zeros(batch, dtype=torch.long, device=device)  # the position each live row feeds next
    inputs = torch.full((batch,), bos_token_id, dtype=torch.long, device=device)
    n, started, finished_total, aligned = batch, batch, 0, True
    while n > 0:
        span = int(pos[:n].max()) + 1
        cache.reserve(span, n)
        logits = _decode_step(model, cache, inputs[:n], pos[:n], span, aligned).float()
        probs = warp_logits(logits, cfg.temperature, cfg.top_k, cfg.top_p).softmax(dim=-1)
        drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        live_seq, live_pos = seq[:n], pos[:n]
        out[live_seq, live_pos] = drawn
        logprobs[live_seq] += logits.log_softmax(dim=-1).gather(1, drawn[:, None]).squeeze(1).double()
        ended = (drawn == eos_token_id) | (live_pos + 1 == max_new_tokens)
        inputs[:n] = drawn
        pos[:n] += 1
        done = ended.nonzero().squeeze(1)
        if done.numel():
            lengths[live_seq[done]] = live_pos[done]  # already advanced: the tokens generated, the last included
            finished_total += done.numel()
            # refill: as many ended rows as there are sequences left start one each, from <bos> at position 0
            starting = done[: num_sequences - started]
            if starting.numel():
                seq[starting] = torch.arange(started, started + starting.numel(), device=device)
                pos[starting], inputs[starting] = 0, bos_token_id
                started += starting.numel()
                aligned = False
            gone = done[starting.numel():]  # ended with nothing left to start: the row leaves the batch
            if gone.numel():
                leaving = torch.zeros(n, dtype=torch.bool, device=device)
                leaving[gone] = True
                keep = n - gone.numel()
                holes = leaving[:keep].nonzero().squeeze(1)
                movers = keep + (~leaving[keep:]).nonzero().squeeze(1)
                if holes.numel():  # live rows from the tail of the batch move into the holes
                    cache.move_rows(movers, holes, span)
                    seq[holes], pos[holes], inputs[holes] = seq[movers], pos[movers], inputs[movers]
                n = keep
        if on_step is not None:
            on_step(finished_total)
    return out.cpu(), lengths.cpu(), logprobs.cpu()


def sample_shard(model, tokenizer, cfg: SamplingConfig, *, seed: int, process_index: int, count: int,
                 max_new_tokens: int) -> SampleResult:
    """The ``count`` samples process ``process_index`` draws.

    A pure function of the weights, ``cfg``, ``seed`` and ``process_index``, so that a test can rebuild
    any process's shard in one process.
    """
    start = time.perf_counter()
    eos = tokenizer.eos_token_id
    generator = torch.Generator(device=model.lm_head.weight.device).manual_seed(process_seed(seed, process_index))
    if count == 0:
        return SampleResult(texts=[], truncated=[], total_tokens=0, seconds=0.0, logprobs=[], token_counts=[])
    # continuous batching where a decoding step costs about the same for any batch (a GPU); on a CPU a step
    # costs its rows, so refilling gains little and its full-size cache costs more (docs/BENCHMARKS.md)
    tokens, lengths, logprobs = sample_token_ids(model, count, tokenizer.bos_token_id, eos, max_new_tokens, cfg,
                                                 generator, batch_size=cfg.per_device_sample_batch_size,
                                                 refill=model.lm_head.weight.device.type == "cuda")
    ended = tokens[torch.arange(count), lengths - 1] == eos  # else the sequence hit the cap
    rows = [ids[: length - end] for ids, length, end in zip(tokens.tolist(), lengths.tolist(), ended.tolist(),
                                                            strict=True)]
    return SampleResult(texts=tokenizer.batch_decode(rows, skip_special_tokens=False), truncated=(~ended).tolist(),
                        total_tokens=int(lengths.sum()), seconds=time.perf_counter() - start,
                        logprobs=logprobs.tolist(), token_counts=lengths.tolist())


def sample_expressions(model, tokenizer, cfg: SamplingConfig, accelerator: Accelerator | None = None, *,
                       seed: int, num_samples: int | None = None) -> SampleResult:
    """Draw ``num_samples`` (default ``cfg.num_samples``) expressions from ``model``, sharded across processes.

    Args:
        model: the unwrapped ``GPT2LMHeadModel``; put in eval mode here, and on the accelerator's device when one
            is given (a model loaded from disk is on the CPU: sampled there, a GPU run's samples took 5x as long).
        tokenizer: the character tokenizer (``bos``/``eos`` ids, decoding).
        cfg: temperature, top-k, top-p, length cap and batch size.
        accelerator: when given, the samples are split across its processes and gathered on every one,
            under its autocast (bf16 where training used bf16).
        seed: the same seed and process count give the same samples.
        num_samples: overrides ``cfg.num_samples`` (e.g. to draw extra samples after curation).

    Returns:
        A ``SampleResult`` holding all processes' samples, on every process, rank 0's first.
    """
    start = time.perf_counter()
    if not isinstance(model, GPT2LMHeadModel):
        raise TypeError(f"model must be a GPT2LMHeadModel (the decoding loop is GPT-2's), got {type(model).__name__}")
    total = cfg.num_samples if num_samples is None else num_samples
    if total < 0:
        raise ValueError(f"num_samples must be >= 0, got {total}")
    cap = model.config.n_positions - 1
    max_new_tokens = cap if cfg.max_new_tokens is None else cfg.max_new_tokens
    if max_new_tokens > cap:
        raise ValueError(f"max_new_tokens must be at most n_positions - 1 = {cap}, got {max_new_tokens}")
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    model.eval()
    if accelerator is not None:
        model.to(accelerator.device)
    with accelerator.autocast() if accelerator is not None else contextlib.nullcontext():
        result = sample_shard(model, tokenizer, cfg, seed=seed, process_index=rank,
                              count=shard_size(total, rank, world), max_new_tokens=max_new_tokens)
    if world > 1:  # every process gets every shard, in rank order
        for name in ("texts", "truncated", "logprobs", "token_counts"):
            setattr(result, name, gather_object(getattr(result, name)))
        result.total_tokens = int(accelerator.reduce(torch.tensor(result.total_tokens, device=accelerator.device),
                                                     "sum").item())
    result.seconds = time.perf_counter() - start
    return result
