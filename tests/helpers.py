"""Test-only helpers for the test modules and tests/mp_worker.py, imported as ``helpers`` (tests/ is on sys.path)."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path
from typing import TYPE_CHECKING

from scl_hf.config import ModelConfig

if TYPE_CHECKING:  # an annotation only: the tests that need no model import this module without torch
    from torch import nn

SCRIPT_DIR = Path(__file__).resolve().parents[1] / "scripts"

# Fast enough for unit tests: about 0.1M parameters.
TINY = ModelConfig(n_layer=2, n_head=2, n_embd=64, n_positions=128, dropout=0.0)


def num_parameters(model: nn.Module) -> int:
    """Unique trainable parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def load_script(name: str) -> types.ModuleType:
    """``scripts/<name>.py`` as a module, without running its ``main`` (a benchmark's reference definitions, such as
    ``bench_correct.naive_distance`` and ``bench_metric.naive_diversity``, are what the tests compare with)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
