"""Training loop: packing, schedule, optimizer groups, best-checkpoint selection, determinism, two processes."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from helpers import TINY
from torch import nn
from transformers import AttentionInterface, AutoModelForCausalLM, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

import scl_hf.train as train_module
from scl_hf.config import ModelConfig, TrainingConfig
from scl_hf.cpu_kernels import (
    CPU_ATTENTION,
    RandDropout,
    cpu_training_kernels,
    rand_dropout_attention,
)
from scl_hf.expressions import make_real_dataset
from scl_hf.model import make_gpt2_config, make_model
from scl_hf.sample import sample_shard
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import (
    IGNORE_INDEX,
    PackedStream,
    decay_groups,
    encode_sequences,
    learning_rate_at,
    make_accelerator,
    make_optimizer,
    mean_nll,
    resolve_mixed_precision,
    split_train_validation,
    train_model,
    validation_blocks,
)

REPO = Path(__file__).resolve().parents[1]


def tiny_run(steps=8, **overrides):
    tokenizer = build_tokenizer(TINY.n_positions)
    torch.manual_seed(0)
    model = make_model(TINY, tokenizer)
    dataset = datasets.Dataset.from_dict({"text": make_real_dataset(200, seed=1)})
    cfg = TrainingConfig(**{"max_steps": steps, "warmup_steps": 2, "eval_steps": 4, "logging_steps": 2,
                            "per_device_train_batch_size": 2, **overrides})
    return tokenizer, model, dataset, cfg


def without_speed(history):
    """The history without what depends on timing: training speed, and each validation's own seconds."""
    return [{k: v for k, v in record.items() if k not in ("tokens_per_second", "seconds")} for record in history]


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    cfg = TrainingConfig(learning_rate=1.0e-3, min_learning_rate=1.0e-4, warmup_steps=100, max_steps=5000)
    assert learning_rate_at(0, cfg) == pytest.approx(1.0e-3 / 101)
    assert learning_rate_at(49, cfg) == pytest.approx(1.0e-3 * 50 / 101)
    assert learning_rate_at(100, cfg) == pytest.approx(1.0e-3)  # the peak, first step of the cosine
    assert learning_rate_at(2550, cfg) == pytest.approx(5.5e-4)  # halfway down: (peak + floor) / 2
    assert learning_rate_at(5000, cfg) == pytest.approx(1.0e-4)
    lrs = [learning_rate_at(s, cfg) for s in range(5000)]
    assert all(a < b for a, b in zip(lrs[:100], lrs[1:101], strict=True))
    assert all(a >= b for a, b in zip(lrs[100:-1], lrs[101:], strict=True))
    assert min(lrs[100:]) > 1.0e-4


def test_encode_sequences_wraps_every_text_in_bos_and_eos():
    tok = build_tokenizer()
    assert [s.tolist() for s in encode_sequences(["True", ""], tok)] == [[1, 8, 15, 18, 11, 2], [1, 2]]


def test_split_holds_out_the_fraction_deterministically():
    texts = [f"t{i}" for i in range(100)]
    train, val = split_train_validation(texts, 0.1, seed=3)
    assert (len(train), len(val)) == (90, 10)
    assert sorted(train + val) == sorted(texts)
    assert split_train_validation(texts, 0.1, seed=3) == (train, val)
    assert split_train_validation(texts, 0.1, seed=4)[1] != val
    assert [len(part) for part in split_train_validation(["a", "b"], 0.1, seed=0)] == [1, 1]
    with pytest.raises(ValueError, match="at least 2 rows"):
        split_train_validation(["a"], 0.1, seed=0)


def test_packed_stream_is_deterministic_for_the_seed():
    sequences = [np.array([1, *range(4, 4 + n % 15), 2]) for n in range(1, 30)]
    a = torch.cat(PackedStream(sequences, 8, seed=5, bos_id=1).next_batch(20))
    assert torch.equal(a, torch.cat(PackedStream(sequences, 8, seed=5, bos_id=1).next_batch(20)))
    assert not torch.equal(a, torch.cat(PackedStream(sequences, 8, seed=6, bos_id=1).next_batch(20)))


def test_validation_blocks_score_every_token_once_and_mask_the_filler():
    inputs, targets = validation_blocks([np.array([1, 5, 2]), np.array([1, 6, 7, 2])], block_size=4, bos_id=1,
                                        filler_id=2)
    assert inputs.tolist() == [[1, 5, 2, 1], [1, 6, 7, 2]]  # the second block re-reads its sequence from <bos>
    assert targets.tolist() == [[5, 2, IGNORE_INDEX, 6], [IGNORE_INDEX, 7, 2, IGNORE_INDEX]]


def names_of(model, params):
    names = {id(p): n for n, p in model.named_parameters()}  # a tied tensor under its first name
    return [names[id(p)] for p in params]


def test_weight_decay_applies_to_matrices_but_not_biases_layernorms_or_positions():
    model = make_model(ModelConfig(), build_tokenizer())
    decay, no_decay = make_optimizer(model, TrainingConfig()).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    blocks = [f"transformer.h.{i}." for i in range(6)]
    assert names_of(model, decay["params"]) == ["transformer.wte.weight"] + [
        b + s for b in blocks for s in ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                                        "mlp.c_proj.weight")]
    assert names_of(model, no_decay["params"]) == ["transformer.wpe.weight"] + [
        b + s for b in blocks for s in ("ln_1.weight", "ln_1.bias", "attn.c_attn.bias", "attn.c_proj.bias",
                                        "ln_2.weight", "ln_2.bias", "mlp.c_fc.bias", "mlp.c_proj.bias")
    ] + ["transformer.ln_f.weight", "transformer.ln_f.bias"]
    assert model.lm_head.weight is model.transformer.wte.weight  # listed once, as the token embedding
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == 10_753_152


def test_weight_decay_follows_the_module_kind_not_the_name():
    config = make_gpt2_config(TINY, build_tokenizer(TINY.n_positions))
    config.tie_word_embeddings = False
    untied = GPT2LMHeadModel(config)
    decay, no_decay = decay_groups(untied)
    assert "lm_head.weight" in names_of(untied, decay)  # the output layer decays ...
    assert {"transformer.wte.weight", "transformer.wpe.weight"} <= set(names_of(untied, no_decay))  # ... lookups don't

    class Net(nn.Module):  # names that mean nothing to the rule
        def __init__(self) -> None:
            super().__init__()
            self.wpe, self.table, self.norm = nn.Linear(4, 4), nn.Embedding(5, 4), nn.LayerNorm(4)
            self.conv = Conv1D(4, 4)
            self.frozen = nn.Linear(4, 4).requires_grad_(False)

    net = Net()
    decay, no_decay = decay_groups(net)
    assert names_of(net, decay) == ["wpe.weight", "conv.weight"]
    assert names_of(net, no_decay) == ["wpe.bias", "table.weight", "norm.weight", "norm.bias", "conv.bias"]
    net.scale = nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="no weight-decay rule for .scale of a Net"):
        decay_groups(net)


def test_mixed_precision_auto_is_full_precision_on_cpu():
    assert resolve_mixed_precision("auto") == ("bf16" if torch.cuda.is_available() else "no")
    assert resolve_mixed_precision("fp16") == "fp16"


def test_dataset_without_text_column_is_rejected():
    tokenizer, model, _, cfg = tiny_run()
    with pytest.raises(ValueError, match="'text' column"):
        train_model(model, tokenizer, datasets.Dataset.from_dict({"expr": ["True"] * 4}), cfg,
                    make_accelerator(cfg), seed=0)


def test_training_is_deterministic_and_lowers_the_loss():
    results = []
    for _ in range(2):
        tokenizer, model, dataset, cfg = tiny_run(steps=8, learning_rate=3.0e-3)
        results.append((train_model(model, tokenizer, dataset, cfg, make_accelerator(cfg), seed=7), model))
    (a, model_a), (b, model_b) = results
    assert without_speed(a.history) == without_speed(b.history)
    assert [r["step"] for r in a.history] == [2, 4, 4, 6, 8, 8]  # logs every 2 steps, evaluations at 4 and 8
    assert a.history[-2]["loss"] < a.history[0]["loss"]
    assert (a.steps, a.train_tokens) == (8, 8 * 2 * TINY.n_positions)
    assert a.best_val_loss == b.best_val_loss and a.best_step in (4, 8)
    assert all(torch.equal(p, q) for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True))
    assert not model_a.training
    assert set(a.to_json()) == {"best_val_loss", "best_step", "steps", "final_train_loss", "train_tokens", "seconds",
                                "stopped_early", "validation_seconds", "compile_seconds"}
    assert not a.stopped_early and 0 < a.validation_seconds < a.seconds
    assert all(r["seconds"] > 0 for r in a.history if "val_loss" in r)  # each validation timed


def test_mean_nll_is_the_validation_loss_on_other_texts():
    tokenizer, model, dataset, cfg = tiny_run(steps=8, learning_rate=3.0e-3)
    acc = make_accelerator(cfg)
    result = train_model(model, tokenizer, dataset, cfg, acc, seed=7)
    _, val_texts = split_train_validation(list(dataset["text"]), cfg.validation_fraction, 7)
    # the best weights are loaded back, so their validation loss comes out again, computed the same way
    assert mean_nll(model, tokenizer, val_texts, acc, cfg.per_device_train_batch_size) == pytest.approx(
        result.best_val_loss, rel=1e-12)
    assert mean_nll(model, tokenizer, [], acc, 2) is None
    # one text by hand: -log p of every token after <bos>, <eos> included, averaged
    text = "not (True)"
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text)["input_ids"], tokenizer.eos_token_id]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
    by_hand = -logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].mean().item()
    assert mean_nll(model, tokenizer, [text], acc, 2) == pytest.approx(by_hand, rel=1e-5)


def test_the_best_validation_weights_are_loaded_back(monkeypatch):
    tokenizer, model, dataset, cfg = tiny_run(steps=12, eval_steps=4)
    losses, snapshots = iter([3.0, 1.0, 2.0]), []

    def fake_evaluate(forward, *args):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(losses)

    monkeypatch.setattr(train_module, "evaluate_loss", fake_evaluate)
    result = train_model(model, tokenizer, dataset, cfg, make_accelerator(cfg), seed=0)
    assert (result.best_step, result.best_val_loss) == (8, 1.0)
    assert [r["val_loss"] for r in result.history if "val_loss" in r] == [3.0, 1.0, 2.0]
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[1][k]) for k in final)  # the step-8 weights, not the last ones
    assert not all(torch.equal(final[k], snapshots[2][k]) for k in final)


@pytest.mark.parametrize(("patience", "steps", "stopped"), [(2, 16, True), (3, 20, False), (None, 20, False)])
def test_training_stops_after_patience_validations_without_a_new_best(monkeypatch, patience, steps, stopped):
    tokenizer, model, dataset, cfg = tiny_run(steps=20, eval_steps=4, logging_steps=3,
                                              early_stopping_patience=patience)
    losses = iter([3.0, 1.0, 2.0, 1.5, 0.5])  # a new best at steps 4, 8 and 20: two stale ones between

    monkeypatch.setattr(train_module, "evaluate_loss", lambda *args: next(losses))
    result = train_model(model, tokenizer, dataset, cfg, make_accelerator(cfg), seed=0)
    assert (result.steps, result.stopped_early) == (steps, stopped)
    assert result.train_tokens == steps * 2 * TINY.n_positions
    assert (result.best_step, result.best_val_loss) == ((8, 1.0) if stopped else (20, 0.5))
    assert [r["step"] for r in result.history if "val_loss" in r] == list(range(4, steps + 1, 4))
    assert result.history[-2]["step"] == steps and "loss" in result.history[-2]  # the last window is logged


def test_each_process_gets_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert [train_module.cpu_threads(None, n) for n in (1, 2, 3, 16, 32)] == [16, 8, 5, 1, 1]
    assert train_module.cpu_threads(3, 8) == 3  # torch_num_threads wins
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
        cfg = TrainingConfig()
        assert train_module.set_cpu_threads(cfg, make_accelerator(cfg)) == 4 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_tensorboard_receives_the_training_curve(tmp_path):
    tokenizer, model, dataset, cfg = tiny_run(steps=4, report_to="tensorboard")
    accelerator = make_accelerator(cfg, project_dir=str(tmp_path))
    train_model(model, tokenizer, dataset, cfg, accelerator, seed=0, step_offset=100)
    accelerator.end_training()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [102, 104]
    assert [e.step for e in events.Scalars("train/val_loss")] == [104]


def test_cpu_training_kernels_swap_in_and_restore():
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = make_model(ModelConfig(), tokenizer)
    with cpu_training_kernels(model):
        assert model.config._attn_implementation == "scl_rand_dropout"
        assert sum(type(m) is RandDropout for m in model.modules()) == 6 * 3 + 1  # 3 per block, embedding
    assert model.config._attn_implementation == "sdpa"
    assert not any(isinstance(m, RandDropout) for m in model.modules())
    assert sum(type(m) is nn.Dropout for m in model.modules()) == 6 * 3 + 1
    with cpu_training_kernels(model):  # a second entry finds the registration in place
        assert AttentionInterface()[CPU_ATTENTION] is rand_dropout_attention


def test_importing_registers_nothing_and_entering_the_kernels_registers_the_attention():
    # a fresh interpreter: this one may have entered cpu_training_kernels already
    script = """
from transformers import AttentionInterface
import scl_hf.cpu_kernels, scl_hf.model, scl_hf.train
from scl_hf.cpu_kernels import CPU_ATTENTION, cpu_training_kernels, rand_dropout_attention
from scl_hf.tokenizer import build_tokenizer
before = CPU_ATTENTION in AttentionInterface()
with cpu_training_kernels(scl_hf.model.make_model(scl_hf.config.ModelConfig(), build_tokenizer())):
    inside = AttentionInterface().get(CPU_ATTENTION) is rand_dropout_attention
print(before, inside)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True"]


def test_rand_dropout_attention_is_causal_attention_with_dropout():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 9, 8) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    for dropout in (0.0, 1e-12):  # the fused kernel, and the math path keeping every weight
        out, _ = rand_dropout_attention(None, q, k, v, None, dropout=dropout, scaling=8 ** -0.5)
        assert torch.allclose(out, expected, atol=1e-6)
    ones = torch.ones(1, 1, 256, 1)
    out, _ = rand_dropout_attention(None, torch.zeros(1, 1, 256, 4), torch.zeros(1, 1, 256, 4), ones, None,
                                    dropout=0.2)
    # row i averages i + 1 dropped-and-rescaled ones: mean 1 over all rows
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="full-sequence"):
        rand_dropout_attention(None, q[:, :, :1], k, v, None, dropout=0.2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_keeps_a_freed_block_for_the_next_one():
    """By default a 64 MiB block is a fresh mmap each time, whose every page faults in on first touch; after
    keep_freed_memory the next block reuses the freed one's pages, already there: no page fault at all."""
    # a fresh interpreter: the setting is process-wide and this one may have entered cpu_training_kernels already
    script = """
import ctypes, resource
from scl_hf.cpu_kernels import keep_freed_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
SIZE = 64 << 20

def faults_of_a_block_after_a_freed_one():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)
    libc.free(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    libc.free(block)
    return faults

default = faults_of_a_block_after_a_freed_one()
keep_freed_memory()
print(default, faults_of_a_block_after_a_freed_one())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    default, kept = (int(n) for n in done.stdout.split())
    assert default >= (64 << 20) // (2 << 20)  # one fault per page at least, were they 2 MiB huge pages
    assert kept == 0


def test_rand_dropout_keeps_the_right_share_and_rescales():
    torch.manual_seed(0)
    out = RandDropout(0.2).train()(torch.ones(1_000_000))
    assert set(out.unique().tolist()) == {0.0, 1.25}
    assert (out > 0).float().mean().item() == pytest.approx(0.8, abs=0.002)
    assert torch.equal(RandDropout(0.2).eval()(out), out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_and_sample_like_one_process(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    import mp_worker

    # `accelerate launch --cpu` starts one process unless MPI is set up; --multi_gpu starts N with torchrun,
    # and ACCELERATE_USE_CPU makes them a gloo group of CPU processes.
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
           str(mp_worker.NUM_PROCESSES), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), str(REPO / "tests" / "mp_worker.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(mp_worker.NUM_PROCESSES)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    assert without_speed(ranks[0]["history"]) == without_speed(ranks[1]["history"])

    # one process with the global batch sees the same blocks: same schedule, same losses up to rounding
    tokenizer, model, dataset, train_cfg, _ = mp_worker.setup(mp_worker.NUM_PROCESSES * mp_worker.PER_DEVICE_BATCH)
    single = train_model(model, tokenizer, dataset, train_cfg, make_accelerator(train_cfg), seed=11)
    multi = ranks[0]["history"]
    assert [r["step"] for r in multi] == [r["step"] for r in single.history]
    assert [r.get("lr") for r in multi] == [r.get("lr") for r in single.history]
    for a, b in zip(multi, single.history, strict=True):
        key = "loss" if "loss" in a else "val_loss"
        assert a[key] == pytest.approx(b[key], abs=1e-5)
    assert ranks[0]["train"]["train_tokens"] == single.train_tokens
    assert ranks[0]["train"]["best_step"] == single.best_step
    assert math.isclose(ranks[0]["train"]["best_val_loss"], single.best_val_loss, abs_tol=1e-5)

    # sampling: every process holds all 7 samples, rank 0's 4 then rank 1's 3, each shard from its own seed
    assert ranks[0]["texts"] == ranks[1]["texts"] and ranks[0]["truncated"] == ranks[1]["truncated"]
    assert len(ranks[0]["texts"]) == mp_worker.NUM_SAMPLES
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    _, _, _, _, sample_cfg = mp_worker.setup(mp_worker.PER_DEVICE_BATCH)
    shards = [sample_shard(trained, tokenizer, sample_cfg, seed=3, process_index=i, count=n, max_new_tokens=24)
              for i, n in enumerate([4, 3])]
    assert ranks[0]["texts"] == shards[0].texts + shards[1].texts
    assert ranks[0]["truncated"] == shards[0].truncated + shards[1].truncated
    assert ranks[0]["total_tokens"] == shards[0].total_tokens + shards[1].total_tokens
    assert ranks[0]["logprobs"] == pytest.approx(shards[0].logprobs + shards[1].logprobs, abs=1e-5)
    same_seed_rank1 = sample_shard(trained, tokenizer, sample_cfg, seed=3, process_index=0, count=3,
                                   max_new_tokens=24)
    assert shards[1].texts != same_seed_rank1.texts  # rank 1 does not repeat rank 0's stream


def test_accelerators_of_another_precision_follow_each_other_in_one_process():
    """Accelerate's state is process-global: fp32, then bf16 (CPU autocast exists), then fp32 again, each takes
    effect (accelerate alone raises at the second), and a bf16 training run works after an fp32 one."""
    acc = make_accelerator(TrainingConfig(mixed_precision="no"))
    layer = nn.Linear(4, 4)
    with acc.autocast():
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    acc = make_accelerator(TrainingConfig(mixed_precision="bf16"))
    assert acc.mixed_precision == "bf16"
    with acc.autocast():
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    tokenizer, model, dataset, cfg = tiny_run(steps=2, mixed_precision="bf16")
    result = train_model(model, tokenizer, dataset, cfg, make_accelerator(cfg), seed=0)
    assert math.isfinite(result.best_val_loss) and result.compile_seconds == 0.0
    acc = make_accelerator(TrainingConfig(mixed_precision="no"))
    with acc.autocast():
        assert layer(torch.ones(1, 4)).dtype == torch.float32
