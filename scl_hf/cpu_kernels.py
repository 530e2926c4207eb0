"""Fast CPU training kernels for the GPT-2 of ``scl_hf.model``: dropout from ``torch.rand``, attention to match.

``cpu_training_kernels(model)`` is the entry point (``scl_hf.train`` wraps its loop in it); the
speed-ups are measured in docs/BENCHMARKS.md. While training on a CPU, dropout masks are drawn with
``torch.rand`` instead of ``bernoulli_``, and attention with dropout runs through
``rand_dropout_attention``. On non-Intel CPUs PyTorch's ``bernoulli_(p)`` takes a serial scalar loop
(its MKL path is Intel-only), about 3x slower than ``torch.rand``; and ``scaled_dot_product_attention``
with ``dropout_p > 0`` falls back to its math kernel, whose attention-probability dropout uses that
same ``bernoulli_``. The masks have the same distribution (keep each value with probability 1 - p,
scale by 1 / (1 - p)); only the random stream differs. GPUs keep PyTorch's fused dropout kernels.
It also asks glibc to keep freed memory (``keep_freed_memory``): by default every block above the
mmap threshold goes back to the OS when freed, so each step faults its activations in again.

Importing this module changes nothing global: the attention function is registered with
transformers' ``AttentionInterface`` when ``cpu_training_kernels`` is first entered.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, GPT2LMHeadModel

CPU_ATTENTION = "scl_rand_dropout"  # name of rand_dropout_attention in transformers' AttentionInterface


def rand_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout whose keep-mask is ``torch.rand(...) >= p`` (a vectorised draw) instead of ``bernoulli_``."""
    return x * (torch.rand_like(x) >= p) * (1.0 / (1.0 - p))


class RandDropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with ``rand_dropout``; no state of its own, so it swaps in and out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return rand_dropout(x, self.p)


_CAUSAL_MASKS: dict[tuple[int, torch.device], torch.Tensor] = {}


def rand_dropout_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                           **kwargs) -> tuple[torch.Tensor, None]:
    """Self-attention for full training sequences; ``(batch, heads, time, head_dim)`` in, out transposed.

    ``attention_mask``: None for plain causal attention, or the ``(batch, 1, time, time)`` bool mask of
    ``scl_hf.train.document_inputs`` (True where attention is allowed). Without dropout it is
    ``scaled_dot_product_attention``. With dropout it is the same math kernel PyTorch falls back to
    (scores, mask, softmax, dropout, weighted sum) with the dropout mask from ``rand_dropout``.
    """
    seq_len = query.shape[-2]
    if key.shape[-2] != seq_len or (attention_mask is not None and attention_mask.dtype != torch.bool):
        raise ValueError(f"{CPU_ATTENTION} serves full-sequence training forwards with a causal or boolean mask "
                         "only; use the model outside cpu_training_kernels for cached inputs")
    if dropout == 0.0:
        if attention_mask is None:
            out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling)
        else:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling)
        return out.transpose(1, 2).contiguous(), None
    if attention_mask is None:
        hidden = _CAUSAL_MASKS.get((seq_len, query.device))
        if hidden is None:  # True above the diagonal: keys a query may not see
            hidden = torch.ones(seq_len, seq_len, dtype=torch.bool, device=query.device).triu(1)
            _CAUSAL_MASKS[(seq_len, query.device)] = hidden
    else:
        hidden = ~attention_mask
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    probs = (torch.matmul(query, key.transpose(-1, -2)) * scale).masked_fill(hidden, float("-inf")).softmax(-1)
    out = torch.matmul(rand_dropout(probs, dropout), value)
    return out.transpose(1, 2).contiguous(), None



def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed activation memory instead of returning it to the OS (Linux only).

    A training step allocates and frees hundreds of MB of activations; above ``M_MMAP_THRESHOLD`` each
    block is a fresh ``mmap`` whose pages fault in on first touch (the zeroing costs about as much as
    the elementwise op that writes them). Raising the threshold and ``M_TRIM_THRESHOLD`` keeps the
    pages in the heap for the next step. Process-wide and not undone: the process keeps its peak
    memory, which the next generation's training reuses. Returns whether glibc accepted the settings.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 31))


@contextmanager
def cpu_training_kernels(model: GPT2LMHeadModel) -> Iterator[GPT2LMHeadModel]:
    """Within the block, ``model`` trains with ``RandDropout`` and ``rand_dropout_attention``; restored on exit.

    Nothing changes on a GPU, where PyTorch's dropout and attention kernels are already fused. On a CPU the
    first entry registers ``rand_dropout_attention`` with transformers as ``CPU_ATTENTION`` (a name of our
    own, which stays registered; later entries find it there) and calls ``keep_freed_memory``.
    """
    if next(model.parameters()).device.type != "cpu":
        yield model
        return
    if AttentionInterface().get(CPU_ATTENTION) is not rand_dropout_attention:
        AttentionInterface.register(CPU_ATTENTION, rand_dropout_attention)
    keep_freed_memory()
    swapped = [m for m in model.modules() if type(m) is nn.Dropout]
    attention = model.config._attn_implementation
    for m in swapped:
        m.__class__ = RandDropout
    model.config._attn_implementation = CPU_ATTENTION
    try:
        yield model
    finally:
        for m in swapped:
            m.__class__ = nn.Dropout
        model.config._attn_implementation = attention
