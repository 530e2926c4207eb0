"""scl_hf: self-consuming training loops on the Hugging Face stack.

Importing the package imports nothing heavy; ``scl_hf.expressions`` and the metric stay free of
torch and transformers. ``scl_hf.load_generation(repo, generation)`` (a published generation's
model and tokenizer) and ``scl_hf.load_generation_data(repo, generation)`` (its dataset config)
are imported from ``scl_hf.hub.load`` on first use.
"""

__version__ = "0.1.0"

_LAZY = {"load_generation": "scl_hf.hub.load", "load_generation_data": "scl_hf.hub.load"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scl_hf' has no attribute {name!r}")
