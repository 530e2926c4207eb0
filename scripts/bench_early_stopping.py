"""What ``early_stopping_patience`` saves and changes: the same run trained to ``max_steps`` and stopped early.

Usage:
    python scripts/bench_early_stopping.py                    # smoke and mini configs, 3 generations each
    python scripts/bench_early_stopping.py --write            # ... and append it to docs/BENCHMARKS.md
    python scripts/bench_early_stopping.py --patience 1 --generations 2 --configs configs/smoke.yaml

Each recipe runs twice with the same seed, in this process, one after the other, without publishing, under a
temporary folder: once as written and once with ``early_stopping_patience``. The table gives per generation the
optimizer steps taken, the step whose weights were kept, the training seconds (validation included) and the
metrics of its samples, side by side; the last row of each recipe sums the steps and seconds. Identical metrics in
a generation mean that stopping kept the same weights there; from the first generation whose weights differ on,
every later one may differ too (its data differ).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from scl_hf.benchmarks import add_output_arguments, load_average, report, run_entry, torch_stack
from scl_hf.config import parse_config
from scl_hf.loop import run_loop

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Early stopping (`scripts/bench_early_stopping.py`)"


def run(recipe: Path, out: Path, generations: int, patience: int | None) -> list[dict]:
    """The metrics.json of every generation of ``recipe`` run under ``out`` (patience None: as written)."""
    name = f"{recipe.stem}_{'off' if patience is None else f'p{patience}'}"
    argv = ["--config", str(recipe), "--output_dir", str(out), "--run_name", name, "--publish", "false",
            "--num_generations", str(generations)]
    if patience is not None:
        argv += ["--early_stopping_patience", str(patience)]
    run_dir = run_loop(parse_config(argv))
    return [json.loads((run_dir / f"gen_{t:02d}" / "metrics.json").read_text()) for t in range(generations)]


def rows(recipe: Path, full: list[dict], early: list[dict]) -> list[str]:
    lines = []
    for a, b in zip(full, early, strict=True):
        ta, tb, ma, mb = a["train"], b["train"], a["metrics"], b["metrics"]
        same = all(ma[k] == mb[k] for k in ("true_rate", "syntax_error_rate", "diversity"))
        lines.append(f"| {recipe.name} | {a['generation']} | {ta['steps']} / {tb['steps']} | "
                     f"{ta['best_step']} / {tb['best_step']} | {ta['seconds']:.1f} / {tb['seconds']:.1f} | "
                     f"{ma['true_rate']:.3f} / {mb['true_rate']:.3f} | {ma['syntax_error_rate']:.3f} / "
                     f"{mb['syntax_error_rate']:.3f} | {ma['diversity']:.4f} / {mb['diversity']:.4f} | "
                     f"{'yes' if same else 'no'} |")
    steps = [sum(g["train"]["steps"] for g in run) for run in (full, early)]
    seconds = [sum(g["train"]["seconds"] for g in run) for run in (full, early)]
    lines.append(f"| {recipe.name} | all | {steps[0]} / {steps[1]} ({1 - steps[1] / steps[0]:.0%} saved) | | "
                 f"{seconds[0]:.1f} / {seconds[1]:.1f} | | | | |")
    return lines


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, nargs="+",
                        default=[REPO / "configs" / "smoke.yaml", REPO / "configs" / "mini_collapse.yaml"])
    parser.add_argument("--generations", type=int, default=3, help="generations of each run")
    parser.add_argument("--patience", type=int, default=2, help="early_stopping_patience of the early runs")
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    load_before = load_average()
    lines = [f"| recipe | generation | steps: to max_steps / patience {args.patience} | best step | train s | "
             "true_rate | syntax_error_rate | diversity | same metrics |", "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="scl_hf_bench_early_") as tmp:
        for recipe in args.configs:
            full = run(recipe, Path(tmp), args.generations, None)
            early = run(recipe, Path(tmp), args.generations, args.patience)
            lines += rows(recipe, full, early)
    report(run_entry(__file__, argv, load_before, "\n".join(lines), torch_stack()), args, HEADING, append=True)


if __name__ == "__main__":
    main()
