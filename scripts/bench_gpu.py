"""What one paper generation costs on a GPU: training tokens/s and MFU, sampling, and a whole generation.

Usage (``scripts/gpu_check.sh`` runs it after the GPU tests):
    python scripts/bench_gpu.py                 # on a CUDA machine: the paper shape
    python scripts/bench_gpu.py --write         # ... and append the table to docs/BENCHMARKS.md
    python scripts/bench_gpu.py --mode cpu      # the same steps at tiny shapes on a CPU (CI runs this)

Rows, in one table:
- training: ``train_model`` at the paper shape (GPT-2 6 x 6 x 384, 64 x 256-token blocks) in bf16 for
  ``--train-steps`` steps, eager and with ``torch_compile``; tokens/s from its training log (validation excluded,
  the first logging window, which holds compilation, dropped) and MFU = 6 x parameters x tokens/s / the chip's
  dense bf16 peak (``--peak-tflops``, 989 for an H200 SXM; none on a CPU);
- sampling: ``sample_expressions`` drawing 10,000 expressions from the trained model (T = 0.8, bf16 autocast);
- generation: ``scl-hf run --config configs/paper.yaml`` for one generation end to end (5,000 steps or early
  stopping with ``--patience``, 10,000 samples, the metric, the likelihoods, publishing to the embedded Hub), in
  a fresh process, with its own seconds per stage from ``metrics.json``.
In ``--mode cpu`` every shape is the smoke config's and the step counts are a few: the row names stay, the figures
mean nothing but that the path runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch

from scl_hf.benchmarks import add_output_arguments, load_average, report, run_entry, torch_stack
from scl_hf.config import ModelConfig, SamplingConfig, TrainingConfig
from scl_hf.expressions import make_real_dataset
from scl_hf.model import PAPER, make_model
from scl_hf.sample import sample_expressions
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import make_accelerator, train_model

REPO = Path(__file__).resolve().parents[1]
HEADING = "## GPU: one paper generation (`scripts/bench_gpu.py`, run by `scripts/gpu_check.sh`)"
TINY_SHAPE = ModelConfig(n_layer=3, n_head=2, n_embd=96, n_positions=128, dropout=0.0)


def train_row(shape: ModelConfig, batch: int, steps: int, compile_: bool, mixed: str, peak: float | None):
    """``(row, model, tokenizer)``: one training measurement and the model it trained."""
    tokenizer = build_tokenizer(shape.n_positions)
    torch.manual_seed(0)
    model = make_model(shape, tokenizer)
    logging = max(1, steps // 5)
    cfg = TrainingConfig(max_steps=steps, warmup_steps=min(100, steps // 5), eval_steps=steps, logging_steps=logging,
                         per_device_train_batch_size=batch, mixed_precision=mixed, torch_compile=compile_)
    data = datasets.Dataset.from_dict({"text": make_real_dataset(10_000, seed=0)})
    result = train_model(model, tokenizer, data, cfg, make_accelerator(cfg), seed=0)
    logged = [r["tokens_per_second"] for r in result.history if "tokens_per_second" in r]
    speeds = logged[1:] or logged  # the first window holds compilation
    tokens_s = sum(speeds) / len(speeds)
    params = sum(p.numel() for p in model.parameters())
    mfu = "n/a" if peak is None else f"{6 * params * tokens_s / (peak * 1e12):.1%}"
    name = f"training, {mixed}, {'torch.compile' if compile_ else 'eager'}"
    detail = (f"{steps} steps of {batch} x {shape.n_positions} tokens, {params / 1e6:.1f}M parameters, "
              f"val loss {result.best_val_loss:.3f}")
    return f"| {name} | {result.seconds:.1f} | {tokens_s:,.0f} tokens/s, MFU {mfu} | {detail} |", model, tokenizer


def sample_row(model, tokenizer, num_samples: int, mixed: str) -> str:
    cfg = SamplingConfig(num_samples=num_samples, temperature=0.8)
    acc = make_accelerator(TrainingConfig(mixed_precision=mixed))
    model = model.to(acc.device)
    sample_expressions(model, tokenizer, cfg, acc, seed=1, num_samples=min(100, num_samples))  # warm-up
    result = sample_expressions(model, tokenizer, cfg, acc, seed=0)
    return (f"| sampling {num_samples:,} expressions | {result.seconds:.1f} | "
            f"{result.num_tokens / result.seconds:,.0f} tokens/s | {sum(result.truncated)} truncated |")


def generation_row(cpu: bool, patience: int | None, out: Path) -> str:
    """One generation of the paper recipe (the smoke recipe on a CPU) through the CLI, in a fresh process."""
    recipe = REPO / "configs" / ("smoke.yaml" if cpu else "paper.yaml")
    argv = [sys.executable, "-m", "scl_hf.cli", "run", "--config", str(recipe), "--output_dir", str(out),
            "--run_name", "gpu_check", "--num_generations", "1"]
    if cpu:
        argv += ["--max_steps", "20", "--eval_steps", "10", "--num_samples", "100", "--heldout_size", "100"]
    if patience is not None:
        argv += ["--early_stopping_patience", str(patience)]
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the generation failed ({proc.returncode}): {proc.stderr[-3000:]}")
    metrics = json.loads((out / "gpu_check" / "gen_00" / "metrics.json").read_text())
    train, sampling, m = metrics["train"], metrics["sampling"], metrics["metrics"]
    detail = (f"{train['steps']} steps ({'stopped early' if train.get('stopped_early') else 'to max_steps'}) in "
              f"{train['seconds']:.1f} s, {sampling['num_samples']:,} samples in {sampling['seconds']:.1f} s; "
              f"true_rate {m['true_rate']:.3f}, syntax errors {m['syntax_error_rate']:.3f}, published")
    return f"| one generation end to end ({recipe.name}) | {seconds:.1f} | process wall time | {detail} |"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--train-steps", type=int, default=300, help="steps of each training measurement")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak, for MFU")
    parser.add_argument("--patience", type=int, default=None, help="early_stopping_patience of the generation")
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    cpu = args.mode == "cpu"
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: no CUDA device here; use --mode cpu for the CPU smoke of the same steps")
    load_before = load_average()
    shape, batch, steps = (TINY_SHAPE, 4, 4) if cpu else (PAPER, 64, args.train_steps)
    mixed, peak = ("no", None) if cpu else ("bf16", args.peak_tflops)
    lines = ["| what | seconds | rate | detail |", "|---|---|---|---|"]
    row, model, tokenizer = train_row(shape, batch, steps, False, mixed, peak)
    lines.append(row)
    if not cpu:  # compiling on a CPU takes minutes and measures nothing this script is for
        lines.append(train_row(shape, batch, steps, True, mixed, peak)[0])
    lines.append(sample_row(model, tokenizer, 50 if cpu else 10_000, mixed))
    with tempfile.TemporaryDirectory(prefix="scl_hf_bench_gpu_") as tmp:
        lines.append(generation_row(cpu, args.patience, Path(tmp)))
    device = "cpu" if cpu else torch.cuda.get_device_name()
    report(run_entry(__file__, argv, load_before, "\n".join(lines), torch_stack(), f"device {device}"), args,
           HEADING, append=True)


if __name__ == "__main__":
    main()
