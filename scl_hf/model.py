"""GPT-2 factory: the paper's small character model.

The model is a stock ``GPT2LMHeadModel`` (it saves and reloads with ``AutoModelForCausalLM``). Two
things make it train fast on a CPU, both measured in docs/BENCHMARKS.md:

- ``activation_function="gelu_pytorch_tanh"``: the same tanh-approximated GELU as GPT-2's ``"gelu_new"``,
  but one fused kernel instead of seven elementwise ops (``gelu_new`` is written out in Python).
- ``scl_hf.cpu_kernels.cpu_training_kernels(model)``, which ``scl_hf.train`` wraps its loop in: dropout
  masks from ``torch.rand`` instead of the serial ``bernoulli_``, and an attention function to match.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from scl_hf.config import ModelConfig


def make_gpt2_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> GPT2Config:
    """A ``GPT2Config`` for ``cfg`` whose vocabulary and special ids come from ``tokenizer``."""
    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        activation_function="gelu_pytorch_tanh",  # = GPT-2's "gelu_new", fused (4x faster on CPU)
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def make_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    """A freshly initialised ``GPT2LMHeadModel`` (seed torch first for reproducible weights)."""
    return GPT2LMHeadModel(make_gpt2_config(cfg, tokenizer))


def load_model(folder: str | Path, device: torch.device | str = "cpu", use_kernels: bool = False) -> GPT2LMHeadModel:
    """A checkpoint of the run directory (``save_pretrained`` output), on ``device``, in eval mode.

    ``use_kernels`` is passed to ``from_pretrained`` explicitly: since transformers 5.2x its default (None) means
    "kernelize from the Hub" wherever the ``kernels`` package is installed, which can fetch code at load time, and a
    run must load its own weights offline and the same way every time.
    """
    model = AutoModelForCausalLM.from_pretrained(folder, use_kernels=use_kernels)
    return model.to(device).eval()
