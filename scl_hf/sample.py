"""Fast batched sampling of expressions from ``<bos>``, with a KV cache and batch compaction.

Every sequence starts from ``<bos>`` alone, so all sequences of a batch are always the same length and
need no padding or attention mask. A sequence that emits ``<eos>`` (or reaches the length cap) leaves
the batch at once, cache rows included: the work follows the mean sample length, not the longest.
Each sequence is still sampled exactly as ``model.generate(do_sample=True)`` would sample it
(temperature, then top-k, then top-p, as the ``transformers`` logits warpers do).

Under ``accelerate launch`` the ``num_samples`` are split across processes (the first
``num_samples % N`` processes draw one more), each process seeds its own generator from
``(seed, process_index)``, and every process returns the full gathered result in rank order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache

from scl_hf.config import SamplingConfig


@dataclass
class SampleResult:
    """Samples in a deterministic order (rank 0's, then rank 1's, ...)."""

    texts: list[str]  # decoded generated tokens, without <bos> and <eos>
    truncated: list[bool]  # True where the sequence hit the length cap before <eos>
    num_tokens: int  # generated tokens, <eos> included, all processes together
    seconds: float


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


@torch.no_grad()
def sample_token_ids(model, num_sequences: int, bos_token_id: int, eos_token_id: int, max_new_tokens: int,
                     cfg: SamplingConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``num_sequences`` continuations of ``<bos>`` together, compacting the batch as they finish.

    Returns:
        ``(tokens, lengths)``: ``tokens`` is ``(num_sequences, max_new_tokens)`` on the CPU, valid up to
        ``lengths`` (the generated tokens, ``<eos>`` included when one was drawn).
    """
    device = next(model.parameters()).device
    tokens = torch.zeros(num_sequences, max_new_tokens, dtype=torch.long)
    lengths = torch.full((num_sequences,), max_new_tokens, dtype=torch.long)
    alive = torch.arange(num_sequences, device=device)  # original row of every sequence still in the batch
    inputs = torch.full((num_sequences, 1), bos_token_id, dtype=torch.long, device=device)
    cache = DynamicCache(config=model.config)
    steps = []  # per step: (rows still alive, tokens drawn), copied to the CPU once at the end
    for t in range(max_new_tokens):
        logits = model(input_ids=inputs, past_key_values=cache, use_cache=True).logits[:, -1, :].float()
        probs = warp_logits(logits, cfg.temperature, cfg.top_k, cfg.top_p).softmax(dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        steps.append((alive, nxt))
        finished = nxt == eos_token_id
        if t + 1 == max_new_tokens:
            break
        if finished.any():  # compaction: finished rows leave the batch and the cache
            keep = (~finished).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            cache.batch_select_indices(keep)
            alive, nxt = alive[keep], nxt[keep]
        inputs = nxt[:, None]
    for t, (rows, drawn) in enumerate(steps):
        rows, drawn = rows.cpu(), drawn.cpu()
        tokens[rows, t] = drawn
        ended = drawn == eos_token_id
        lengths[rows[ended]] = t + 1
    return tokens, lengths


def sample_expressions(model, tokenizer, cfg: SamplingConfig, accelerator=None, *, seed: int,
                       num_samples: int | None = None) -> SampleResult:
    """Draw ``num_samples`` (default ``cfg.num_samples``) expressions from ``model``, sharded across processes.

    Args:
        model: a causal LM (the unwrapped ``GPT2LMHeadModel``); put in eval mode here.
        tokenizer: the character tokenizer (``bos``/``eos`` ids, decoding).
        cfg: temperature, top-k, top-p, length cap and batch size.
        accelerator: when given, the samples are split across its processes and gathered on every one.
        seed: the same seed and process count give the same samples.
        num_samples: overrides ``cfg.num_samples`` (e.g. to draw extra samples after curation).

    Returns:
        A ``SampleResult`` holding all processes' samples, on every process.
    """
    start = time.perf_counter()
    total = cfg.num_samples if num_samples is None else num_samples
    if total < 0:
        raise ValueError(f"num_samples must be >= 0, got {total}")
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    cap = model.config.n_positions - 1
    max_new_tokens = cap if cfg.max_new_tokens is None else cfg.max_new_tokens
    if max_new_tokens > cap:
        raise ValueError(f"max_new_tokens must be at most n_positions - 1 = {cap}, got {max_new_tokens}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(process_seed(seed, rank))
    model.eval()

    texts: list[str] = []
    truncated: list[bool] = []
    num_tokens = 0
    mine = shard_size(total, rank, world)
    for first in range(0, mine, cfg.per_device_sample_batch_size):
        n = min(cfg.per_device_sample_batch_size, mine - first)
        tokens, lengths = sample_token_ids(model, n, tokenizer.bos_token_id, tokenizer.eos_token_id,
                                           max_new_tokens, cfg, generator)
        ended = (lengths <= max_new_tokens) & (tokens[torch.arange(n), lengths - 1] == tokenizer.eos_token_id)
        rows = [row[: length - int(end)] for row, length, end in
                zip(tokens.tolist(), lengths.tolist(), ended.tolist(), strict=True)]
        texts.extend(tokenizer.batch_decode(rows, skip_special_tokens=False))
        truncated.extend((~ended).tolist())
        num_tokens += int(lengths.sum())

    if accelerator is not None and world > 1:
        from accelerate.utils import gather_object

        texts = gather_object(texts)
        truncated = gather_object(truncated)
        num_tokens = int(accelerator.reduce(torch.tensor(num_tokens, device=accelerator.device), "sum").item())
    return SampleResult(texts=texts, truncated=truncated, num_tokens=num_tokens, seconds=time.perf_counter() - start)
