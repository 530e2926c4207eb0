"""Packing: blocks start at a <bos>, every token is predicted once with its whole sequence as context."""

import numpy as np
import torch

from scl_hf.config import ModelConfig
from scl_hf.cpu_kernels import cpu_training_kernels
from scl_hf.model import make_model
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import IGNORE_INDEX, PackedStream, document_inputs, validation_blocks

SEQS = [np.array([1, 5, 6, 2]), np.array([1, 7, 2]), np.array([1, 8, 9, 10, 11, 2])]


def test_blocks_start_at_bos_and_reread_a_cut_sequence():
    inputs, targets = PackedStream(SEQS, 4, seed=0, bos_id=1).next_batch(6)
    assert (inputs[:, 0] == 1).all()  # every block starts at a sequence's <bos>: position 0, as in sampling
    assert torch.cat([inputs, targets], 1).tolist() == [
        [1, 8, 9, 10, 8, 9, 10, 11],  # the 6-token sequence is cut to block_size + 1 = 5 tokens
        [1, 5, 6, 2, 5, 6, 2, IGNORE_INDEX],  # <bos> of the next sequence is never a target
        [1, 7, 2, 1, 7, 2, IGNORE_INDEX, 8],
        [1, 8, 9, 10, IGNORE_INDEX, 9, 10, 11],  # re-read from its <bos>; 8 was predicted by the block before
        [1, 7, 2, 1, 7, 2, IGNORE_INDEX, 5],  # a new epoch (new order) continues the stream
        [1, 5, 6, 2, IGNORE_INDEX, 6, 2, IGNORE_INDEX],
    ]


def test_every_token_is_predicted_exactly_once_per_epoch():
    rng = np.random.default_rng(0)
    seqs = [np.array([1, *rng.integers(4, 19, size=rng.integers(1, 30)), 2]) for _ in range(50)]
    stream = PackedStream(seqs, 16, seed=3, bos_id=1)
    _, targets = stream.next_batch(200)
    predicted = (targets != IGNORE_INDEX).sum().item()
    per_epoch = sum(len(s[:17]) - 1 for s in seqs)
    assert stream.epoch >= 2 and predicted >= per_epoch
    _, val_targets = validation_blocks(seqs, 16, bos_id=1, filler_id=2)
    assert (val_targets != IGNORE_INDEX).sum().item() == per_epoch


def test_document_mask_makes_packed_sequences_independent():
    tok = build_tokenizer(32)
    torch.manual_seed(0)
    model = make_model(ModelConfig(n_layer=2, n_head=2, n_embd=32, n_positions=32, dropout=0.0), tok).eval()
    a = [1, *tok("True and False")["input_ids"], 2]
    b = [1, *tok("not (True)")["input_ids"], 2]
    packed = torch.tensor([a + b])
    extra = document_inputs(packed, tok.bos_token_id)
    assert extra["position_ids"].tolist() == [list(range(len(a))) + list(range(len(b)))]
    with torch.no_grad():
        together = model(packed, **extra).logits[0, len(a):]
        alone = model(torch.tensor([b])).logits[0]
        assert torch.allclose(together, alone, atol=1e-5)  # b sees neither a nor a's positions
        with cpu_training_kernels(model):  # the CPU training attention honours the same mask
            assert torch.allclose(model(packed, **extra).logits[0, len(a):], alone, atol=1e-5)
