"""scl_hf: self-consuming training loops on the Hugging Face stack.

Importing the package imports nothing heavy; ``scl_hf.expressions`` and the metric stay free of
torch and transformers.
"""

__version__ = "0.1.0"
