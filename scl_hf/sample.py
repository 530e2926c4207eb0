"""Fast batched sampling of expressions from ``<bos>``, with a KV cache and batch compaction.

Every sequence starts from ``<bos>`` alone, so all sequences of a batch are always the same length and
need no padding or attention mask. A sequence that emits ``<eos>`` (or reaches the length cap) leaves
the batch at once, cache rows included: the work follows the mean sample length, not the longest.
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
    num_tokens: int  # generated tokens, <eos> included, all processes together
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

    def __init__(self, layers: int, rows: int, heads: int, head_dim: int, max_len: int, device, dtype) -> None:
        self.max_len = max_len
        self.data = torch.empty(layers, 2, rows, heads, min(64, max_len), head_dim, device=device, dtype=dtype)

    def reserve(self, length: int, rows: int) -> None:
        """Make room for ``length`` positions, keeping the first ``rows`` rows."""
        capacity = self.data.shape[4]
        if length <= capacity:
            return
        while capacity < length:
            capacity = min(2 * capacity, self.max_len)
        grown = self.data.new_empty(*self.data.shape[:4], capacity, self.data.shape[5])
        grown[:, :, :rows, :, : self.data.shape[4]] = self.data[:, :, :rows]
        self.data = grown

    def move_rows(self, src: torch.Tensor, dst: torch.Tensor, length: int) -> None:
        """Copy rows ``src`` over rows ``dst`` (the first ``length`` positions)."""
        self.data[:, :, dst, :, :length] = self.data[:, :, src, :, :length]


def _decode_step(model, cache: KVCache, tokens: torch.Tensor, position: int) -> torch.Tensor:
    """Logits ``(n, vocab)`` after feeding ``tokens`` ``(n,)`` at ``position`` to the first ``n`` cache rows.

    The GPT-2 forward written out for one new token per row, reusing the model's own modules (so
    every config option of the blocks applies) with attention over the preallocated cache.
    """
    gpt = model.transformer
    n = tokens.shape[0]
    x = gpt.wte(tokens) + gpt.wpe.weight[position]  # (n, n_embd)
    for layer, block in enumerate(gpt.h):
        attn = block.attn
        q, k, v = attn.c_attn(block.ln_1(x)).view(n, 3, attn.num_heads, attn.head_dim).unbind(1)  # (n, heads, d)
        cache.data[layer, 0, :n, :, position] = k
        cache.data[layer, 1, :n, :, position] = v
        keys = cache.data[layer, 0, :n, :, : position + 1]  # (n, heads, position + 1, d)
        values = cache.data[layer, 1, :n, :, : position + 1]
        # one query per row attends to every cached position: no causal mask needed
        y = F.scaled_dot_product_attention(q.unsqueeze(2), keys, values, scale=attn.scaling)
        x = x + attn.c_proj(y.reshape(n, -1))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(gpt.ln_f(x))


@torch.no_grad()
def sample_token_ids(model, num_sequences: int, bos_token_id: int, eos_token_id: int, max_new_tokens: int,
                     cfg: SamplingConfig, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample ``num_sequences`` continuations of ``<bos>`` together, compacting the batch as they finish.

    Returns:
        ``(tokens, lengths, logprobs)`` on the CPU: ``tokens`` is ``(num_sequences, max_new_tokens)``, valid up to
        ``lengths`` (the generated tokens, ``<eos>`` included when one was drawn); ``logprobs`` (float64) is each
        sequence's log-probability at temperature 1 (unwarped logits) over those tokens.
    """
    config = model.config
    device = model.lm_head.weight.device
    # keys and values come out of the projections in the autocast dtype when one is active (bf16 on GPUs)
    dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else model.dtype
    cache = KVCache(config.n_layer, num_sequences, config.n_head, config.n_embd // config.n_head, max_new_tokens,
                    device, dtype)
    out = torch.zeros(num_sequences, max_new_tokens, dtype=torch.long, device=device)
    lengths = torch.full((num_sequences,), max_new_tokens, dtype=torch.long, device=device)
    logprobs = torch.zeros(num_sequences, dtype=torch.float64, device=device)
    row = torch.arange(num_sequences, device=device)  # original sequence held by each live batch row
    inputs = torch.full((num_sequences,), bos_token_id, dtype=torch.long, device=device)
    n = num_sequences
    for t in range(max_new_tokens):
        cache.reserve(t + 1, n)
        logits = _decode_step(model, cache, inputs[:n], t).float()
        probs = warp_logits(logits, cfg.temperature, cfg.top_k, cfg.top_p).softmax(dim=-1)
        drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        out[row[:n], t] = drawn
        logprobs[row[:n]] += logits.log_softmax(dim=-1).gather(1, drawn[:, None]).squeeze(1).double()
        inputs[:n] = drawn
        finished = drawn == eos_token_id
        num_finished = int(finished.sum())
        if num_finished == 0:
            continue
        lengths[row[:n][finished]] = t + 1
        # swap-remove: live rows from the tail of the batch move into the holes left by finished ones
        keep = n - num_finished
        holes = finished[:keep].nonzero().squeeze(1)
        movers = keep + (~finished[keep:]).nonzero().squeeze(1)
        if holes.numel():
            cache.move_rows(movers, holes, t + 1)
            row[holes], inputs[holes] = row[movers], inputs[movers]
        n = keep
        if n == 0:
            break
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
    result = SampleResult(texts=[], truncated=[], num_tokens=0, seconds=0.0, logprobs=[], token_counts=[])
    for first in range(0, count, cfg.per_device_sample_batch_size):
        n = min(cfg.per_device_sample_batch_size, count - first)
        tokens, lengths, logprobs = sample_token_ids(model, n, tokenizer.bos_token_id, eos, max_new_tokens, cfg,
                                                     generator)
        ended = tokens[torch.arange(n), lengths - 1] == eos  # else the sequence hit the cap
        rows = [ids[: length - end] for ids, length, end in zip(tokens.tolist(), lengths.tolist(), ended.tolist(),
                                                                strict=True)]
        result.texts.extend(tokenizer.batch_decode(rows, skip_special_tokens=False))
        result.truncated.extend((~ended).tolist())
        result.num_tokens += int(lengths.sum())
        result.logprobs.extend(logprobs.tolist())
        result.token_counts.extend(lengths.tolist())
    result.seconds = time.perf_counter() - start
    return result


def sample_expressions(model, tokenizer, cfg: SamplingConfig, accelerator: Accelerator | None = None, *,
                       seed: int, num_samples: int | None = None) -> SampleResult:
    """Draw ``num_samples`` (default ``cfg.num_samples``) expressions from ``model``, sharded across processes.

    Args:
        model: the unwrapped ``GPT2LMHeadModel``; put in eval mode here.
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
    with accelerator.autocast() if accelerator is not None else contextlib.nullcontext():
        result = sample_shard(model, tokenizer, cfg, seed=seed, process_index=rank,
                              count=shard_size(total, rank, world), max_new_tokens=max_new_tokens)
    if world > 1:  # every process gets every shard, in rank order
        for name in ("texts", "truncated", "logprobs", "token_counts"):
            setattr(result, name, gather_object(getattr(result, name)))
        result.num_tokens = int(accelerator.reduce(torch.tensor(result.num_tokens, device=accelerator.device),
                                                   "sum").item())
    result.seconds = time.perf_counter() - start
    return result
