"""GPT-2 factory: the paper's small character model and a tiny one for tests."""

from __future__ import annotations

from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from scl_hf.config import ModelConfig

# nanoGPT's shakespeare-char recipe, as in Briesch et al.: about 10.75M parameters with our 19 tokens.
PAPER = ModelConfig()
# Fast enough for unit tests and the CPU smoke loop: about 0.1M parameters.
TINY = ModelConfig(n_layer=2, n_head=2, n_embd=64, n_positions=128, dropout=0.0)


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
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def make_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    """A freshly initialised ``GPT2LMHeadModel`` (seed torch first for reproducible weights)."""
    return GPT2LMHeadModel(make_gpt2_config(cfg, tokenizer))


def num_parameters(model: GPT2LMHeadModel) -> int:
    """Unique trainable parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
