"""The GPU path (``pytest -m gpu``; skipped without CUDA): bf16 training with and without torch.compile, the
sampler under bf16 autocast against ``model.generate``, and the attention kernel the document masks get.

``scripts/gpu_check.sh`` runs these first on a GPU machine, then measures; CI, without CUDA, skips them.
"""

import time

import datasets
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY
from test_sample import CAP, generate_texts, worst_ratio

from scl_hf.config import ModelConfig, SamplingConfig, TrainingConfig
from scl_hf.expressions import make_real_dataset
from scl_hf.model import load_model, make_model
from scl_hf.sample import sample_expressions
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import PackedStream, document_inputs, encode_sequences, make_accelerator, train_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def train(mixed_precision: str, compile_: bool, steps: int = 30):
    tokenizer = build_tokenizer(TINY.n_positions)
    torch.manual_seed(0)
    model = make_model(TINY, tokenizer)
    cfg = TrainingConfig(max_steps=steps, warmup_steps=5, eval_steps=steps, logging_steps=10,
                         per_device_train_batch_size=16, mixed_precision=mixed_precision, torch_compile=compile_)
    dataset = datasets.Dataset.from_dict({"text": make_real_dataset(1000, seed=0)})
    result = train_model(model, tokenizer, dataset, cfg, make_accelerator(cfg), seed=1)
    return result, model, tokenizer


@pytest.fixture(scope="module")
def fp32():
    return train("no", False)


@pytest.mark.parametrize("compile_", [False, True], ids=["eager", "compiled"])
def test_bf16_training_gives_finite_losses_close_to_fp32(fp32, compile_):
    reference, _, _ = fp32
    result, model, _ = train("bf16", compile_)
    losses = [r["loss"] for r in result.history if "loss" in r]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert next(model.parameters()).device.type == "cuda"
    assert result.best_val_loss == pytest.approx(reference.best_val_loss, rel=0.05)
    assert losses[-1] < losses[0]


def test_sampling_under_bf16_autocast_matches_model_generate(fp32):
    _, model, tokenizer = fp32
    model = model.cuda().eval()
    cfg = TrainingConfig(mixed_precision="bf16")
    n = 4000
    sampling = SamplingConfig(num_samples=n, temperature=0.8, max_new_tokens=CAP, per_device_sample_batch_size=1000)
    ours = sample_expressions(model, tokenizer, sampling, make_accelerator(cfg), seed=0).texts
    assert worst_ratio(ours, generate_texts(model, tokenizer, n, temperature=0.8, seed=0, device="cuda")) < 1.0


def test_document_masks_run_on_a_fused_attention_kernel():
    """The per-sequence 4D masks of packed blocks must not need SDPA's math kernel (the slowest); timed against
    unmasked (causal) SDPA at the paper shape, printed for gpu_check.sh's log."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    paper = ModelConfig()  # the defaults are the paper's shape
    tokenizer = build_tokenizer(paper.n_positions)
    model = make_model(paper, tokenizer).cuda()
    stream = PackedStream(encode_sequences(make_real_dataset(2000, seed=0), tokenizer), paper.n_positions, 0,
                          tokenizer.bos_token_id)
    inputs, _ = stream.next_batch(64)
    inputs = inputs.cuda()
    masked = document_inputs(inputs, tokenizer.bos_token_id)

    def step(**extra):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=inputs, use_cache=False, **extra).logits
        F.cross_entropy(logits.float().flatten(0, 1), inputs.flatten()).backward()

    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    with sdpa_kernel(fused):  # raises if only the math kernel can take these masks
        step(**masked)
    times = {}
    for name, extra in (("document masks", masked), ("causal, unmasked", {})):
        for _ in range(3):
            step(**extra)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            step(**extra)
        torch.cuda.synchronize()
        times[name] = (time.perf_counter() - start) / 10
    print(f"forward+backward, 64 x 256 tokens, paper shape: {times}")  # a figure for gpu_check.sh's log, no assertion


def test_the_sampler_runs_on_the_accelerators_device_whatever_device_the_model_was_loaded_on(fp32, tmp_path):
    """The loop loads each checkpoint from disk (on the CPU); sampled there, a paper generation's 10,000 samples
    took 24.8 s instead of 4.8 s on an H200. sample_expressions puts the model on the accelerator's device."""
    _, model, tokenizer = fp32
    model.save_pretrained(tmp_path)
    reloaded = load_model(tmp_path)
    assert reloaded.lm_head.weight.device.type == "cpu"
    sampling = SamplingConfig(num_samples=50, temperature=0.8, max_new_tokens=CAP)
    drawn = sample_expressions(reloaded, tokenizer, sampling, make_accelerator(TrainingConfig()), seed=0)
    assert reloaded.lm_head.weight.device.type == "cuda" and len(drawn.texts) == 50
