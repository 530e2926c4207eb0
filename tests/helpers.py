"""Test-only helpers for the test modules and tests/mp_worker.py, imported as ``helpers`` (tests/ is on sys.path)."""

from __future__ import annotations

from torch import nn

from scl_hf.config import ModelConfig

# Fast enough for unit tests: about 0.1M parameters.
TINY = ModelConfig(n_layer=2, n_head=2, n_embd=64, n_positions=128, dropout=0.0)


def num_parameters(model: nn.Module) -> int:
    """Unique trainable parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
