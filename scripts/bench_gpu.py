"""What a paper generation costs on a GPU: training, sampling, a whole generation, and several runs at once.

Usage (``scripts/gpu_check.sh`` runs it after the GPU tests):
    python scripts/bench_gpu.py                       # on a CUDA machine: the paper shape
    python scripts/bench_gpu.py --out DIR             # ... each row also appended to DIR/bench.md as it is measured
    python scripts/bench_gpu.py --deadline 1733333333 # ... rows that would end past this time (epoch s) are skipped
    python scripts/bench_gpu.py --write               # ... and the table appended to docs/BENCHMARKS.md
    python scripts/bench_gpu.py --mode cpu            # the same steps at tiny shapes on a CPU (CI runs this)

Rows, in one table:
- training: ``train_model`` at the paper shape (GPT-2 6 x 6 x 384, 64 x 256-token blocks) in bf16 for
  ``--train-steps`` steps, eager and with ``torch_compile``; tokens/s from its training log (validation excluded,
  compilation counted apart) and MFU = 6 x parameters x tokens/s / the chip's dense bf16 peak (``--peak-tflops``,
  989 for an H200 SXM; none on a CPU). A second compiled training of a new model of the same shape (the next
  generation) shows whether the compiled graphs are reused: its compile seconds against the first's;
- sampling: ``sample_expressions`` drawing 10,000 expressions (T = 0.8, bf16 autocast) from the trained model
  on the GPU, and from the same model saved and reloaded the way the loop does (``load_model``): the two must
  cost the same;
- generation: ``scl-hf run --config configs/paper.yaml`` for one generation end to end (its early stopping, 10,000
  samples, the metric, the likelihoods, publishing to the embedded Hub), eager and compiled, each in a fresh
  process, with its own seconds per stage from ``metrics.json``;
- runs at once: ``scl-hf sweep`` (local executor) of K = 1, 4, 8 paper-shape runs of ``--pack-steps`` steps on the
  one GPU: aggregate training steps/s (the sum of each run's steps over its training seconds).
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
import yaml

from scl_hf.benchmarks import add_output_arguments, load_average, report, run_entry, torch_stack
from scl_hf.config import ModelConfig, SamplingConfig, TrainingConfig
from scl_hf.expressions import make_real_dataset
from scl_hf.model import load_model, make_model
from scl_hf.sample import sample_expressions
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import make_accelerator, train_model

REPO = Path(__file__).resolve().parents[1]
HEADING = "## GPU: one paper generation (`scripts/bench_gpu.py`, run by `scripts/gpu_check.sh`)"
TINY_SHAPE = ModelConfig(n_layer=3, n_head=2, n_embd=96, n_positions=128, dropout=0.0)
HEADER = ["| what | seconds | rate | detail |", "|---|---|---|---|"]


class Table:
    """The rows measured so far: printed and, with ``--out``, appended to ``DIR/bench.md`` as each one comes."""

    def __init__(self, out: Path | None, deadline: float | None) -> None:
        self.lines = list(HEADER)
        self.path = None if out is None else out / "bench.md"
        self.deadline = deadline
        if self.path is not None:
            self.path.write_text("\n".join(HEADER) + "\n", encoding="utf-8")

    def add(self, row: str) -> None:
        self.lines.append(row)
        print(row, flush=True)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(row + "\n")

    def fits(self, name: str, seconds: float) -> bool:
        """Whether a row of about ``seconds`` ends before the deadline; else a row saying it was skipped."""
        if self.deadline is None or time.time() + seconds < self.deadline:
            return True
        self.add(f"| {name} | - | skipped | about {seconds:.0f} s needed, {self.deadline - time.time():.0f} s left |")
        return False


def train_row(shape: ModelConfig, batch: int, steps: int, compile_: bool, mixed: str, peak: float | None,
              label: str = ""):
    """``(row, model, tokenizer)``: one training measurement and the model it trained."""
    tokenizer = build_tokenizer(shape.n_positions)
    torch.manual_seed(0)
    model = make_model(shape, tokenizer)
    logging = max(1, steps // 5)
    cfg = TrainingConfig(max_steps=steps, warmup_steps=min(100, steps // 5), eval_steps=steps, logging_steps=logging,
                         per_device_train_batch_size=batch, mixed_precision=mixed, torch_compile=compile_)
    data = datasets.Dataset.from_dict({"text": make_real_dataset(10_000, seed=0)})
    result = train_model(model, tokenizer, data, cfg, make_accelerator(cfg), seed=0)
    speeds = [r["tokens_per_second"] for r in result.history if "tokens_per_second" in r]
    tokens_s = sum(speeds) / len(speeds)
    params = sum(p.numel() for p in model.parameters())
    mfu = "n/a" if peak is None else f"{6 * params * tokens_s / (peak * 1e12):.1%}"
    name = f"training, {mixed}, {'torch.compile' if compile_ else 'eager'}{label}"
    compiled = f"compile {result.compile_seconds:.1f} s, " if compile_ else ""
    detail = (f"{steps} steps of {batch} x {shape.n_positions} tokens, {params / 1e6:.1f}M parameters, {compiled}"
              f"validation {result.validation_seconds:.1f} s, val loss {result.best_val_loss:.3f}")
    return f"| {name} | {result.seconds:.1f} | {tokens_s:,.0f} tokens/s, MFU {mfu} | {detail} |", model, tokenizer


def sample_row(model, tokenizer, num_samples: int, mixed: str, how: str) -> str:
    cfg = SamplingConfig(num_samples=num_samples, temperature=0.8)
    acc = make_accelerator(TrainingConfig(mixed_precision=mixed))
    sample_expressions(model, tokenizer, cfg, acc, seed=1, num_samples=min(100, num_samples))  # warm-up
    result = sample_expressions(model, tokenizer, cfg, acc, seed=0)
    return (f"| sampling {num_samples:,} expressions, {how} | {result.seconds:.1f} | "
            f"{result.total_tokens / result.seconds:,.0f} tokens/s | {sum(result.truncated)} truncated |")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "scl_hf.cli", *args]


def run_quietly(argv: list[str], what: str) -> float:
    """Run ``argv`` in a fresh process; its wall seconds, or a RuntimeError with the end of its output."""
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-3000:]}")
    return time.perf_counter() - start


def generation_row(cpu: bool, compile_: bool, out: Path) -> str:
    """One generation of the paper recipe (the smoke recipe on a CPU) through the CLI, in a fresh process."""
    recipe = REPO / "configs" / ("smoke.yaml" if cpu else "paper.yaml")
    name = f"gen_{'compiled' if compile_ else 'eager'}"
    argv = cli("run", "--config", str(recipe), "--output_dir", str(out), "--run_name", name, "--num_generations", "1",
               "--torch_compile", str(compile_).lower())
    if cpu:
        argv += ["--max_steps", "20", "--eval_steps", "10", "--num_samples", "100", "--heldout_size", "100"]
    seconds = run_quietly(argv, "the generation")
    metrics = json.loads((out / name / "gen_00" / "metrics.json").read_text())
    train, sampling, m = metrics["train"], metrics["sampling"], metrics["metrics"]
    detail = (f"{train['steps']} steps (best {train['best_step']}, "
              f"{'stopped early' if train.get('stopped_early') else 'to max_steps'}) in {train['seconds']:.1f} s "
              f"(compile {train.get('compile_seconds', 0.0):.1f} s, validation {train['validation_seconds']:.1f} s), "
              f"{sampling['num_samples']:,} samples in {sampling['seconds']:.1f} s; true_rate {m['true_rate']:.3f}, "
              f"syntax errors {m['syntax_error_rate']:.3f}, diversity {m['diversity']:.3f}, "
              f"heldout_nll {metrics['eval']['heldout_nll']:.3f}, published")
    what = f"one generation end to end ({recipe.name}, {'torch.compile' if compile_ else 'eager'})"
    return f"| {what} | {seconds:.1f} | process wall time | {detail} |"


def runs_at_once_row(cpu: bool, k: int, steps: int, out: Path) -> str:
    """K runs of one generation as ``scl-hf sweep`` starts them (local executor, K at once) on this machine."""
    folder = out / f"at_once_{k}"
    sweep = {"recipes": [str(REPO / "configs" / ("smoke.yaml" if cpu else "paper.yaml"))],
             "overrides": {"num_generations": 1, "max_steps": steps, "eval_steps": steps, "num_samples": 500,
                           "heldout_size": 200, "publish": False, "early_stopping_patience": None},
             "seeds": list(range(k)), "executor": "local", "max_parallel": k}
    folder.mkdir(parents=True)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep), encoding="utf-8")
    seconds = run_quietly(cli("sweep", str(path), "--output_dir", str(folder / "runs")), f"the sweep of {k}")
    trains = [json.loads(p.read_text())["train"] for p in sorted((folder / "runs").glob("*/gen_00/metrics.json"))]
    if len(trains) != k:
        raise RuntimeError(f"the sweep of {k} finished {len(trains)} runs")
    rate = sum(t["steps"] / t["seconds"] for t in trains)
    return (f"| {k} run(s) at once, one generation each | {seconds:.1f} | {rate:,.1f} training steps/s together | "
            f"{steps} steps each; training {min(t['seconds'] for t in trains):.1f}-"
            f"{max(t['seconds'] for t in trains):.1f} s per run; sweep wall time includes start-up and sampling |")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--train-steps", type=int, default=300, help="steps of each training measurement")
    parser.add_argument("--pack-steps", type=int, default=300, help="steps of each run of the runs-at-once rows")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak, for MFU")
    parser.add_argument("--out", type=Path, default=None, help="a folder: bench.md there gets each row as it comes")
    parser.add_argument("--deadline", type=float, default=None, help="epoch seconds: skip rows that would end later")
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    cpu = args.mode == "cpu"
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: no CUDA device here; use --mode cpu for the CPU smoke of the same steps")
    load_before = load_average()
    shape, batch, steps = (TINY_SHAPE, 4, 4) if cpu else (ModelConfig(), 64, args.train_steps)  # defaults: the paper's
    mixed, peak = ("no", None) if cpu else ("bf16", args.peak_tflops)
    pack_steps = 4 if cpu else args.pack_steps
    table = Table(args.out, args.deadline)
    # (row name, about how long it takes on an H200; the deadline check skips what would not fit)
    row, model, tokenizer = train_row(shape, batch, steps, False, mixed, peak)
    table.add(row)
    if not cpu and table.fits("training, compiled", 60):  # compiling on a CPU takes minutes and measures nothing
        table.add(train_row(shape, batch, steps, True, mixed, peak)[0])
        again = ", a second model (next generation)"
        table.add(train_row(shape, batch, steps // 3, True, mixed, peak, label=again)[0])
    device = "cpu" if cpu else "cuda"
    if table.fits("sampling", 30):
        table.add(sample_row(model.to(device), tokenizer, 50 if cpu else 10_000, mixed, "model on the device"))
        with tempfile.TemporaryDirectory(prefix="scl_hf_bench_gpu_") as tmp:
            model.save_pretrained(tmp)
            reloaded = load_model(tmp)  # on the CPU, as the loop's from_pretrained left it before
            table.add(sample_row(reloaded, tokenizer, 50 if cpu else 10_000, mixed, "reloaded as the loop does"))
    with tempfile.TemporaryDirectory(prefix="scl_hf_bench_gpu_") as tmp:
        for compile_ in ((False,) if cpu else (False, True)):
            if table.fits(f"one generation end to end ({'compiled' if compile_ else 'eager'})", 90):
                table.add(generation_row(cpu, compile_, Path(tmp)))
        for k in (1, 2) if cpu else (1, 4, 8):
            if table.fits(f"{k} run(s) at once", 20 + 10 * k):
                table.add(runs_at_once_row(cpu, k, pack_steps, Path(tmp)))
    name = "cpu" if cpu else torch.cuda.get_device_name()
    report(run_entry(__file__, argv, load_before, "\n".join(table.lines), torch_stack(), f"device {name}"), args,
           HEADING, append=True)


if __name__ == "__main__":
    main()
