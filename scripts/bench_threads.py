"""Aggregate generations per hour on this machine: one run with every core, or several runs sharing them.

Usage:
    python scripts/bench_threads.py                   # mini config, 2 generations per run
    python scripts/bench_threads.py --write           # ... and append it to docs/BENCHMARKS.md
    python scripts/bench_threads.py --oversubscribed  # also: every run with every core (what to avoid)

Each layout starts its runs together as ``scl-hf run`` processes (fresh interpreters, no publishing, under a
temporary folder) and waits for all of them: "1 run x C threads" is one run with ``torch_num_threads`` = C, the
cores this process may use; "C runs x 1 thread" is C runs at once with one thread each (disjoint shares, what the
sweep runner gives parallel runs); "C runs x C threads" (``--oversubscribed``) gives every run every core, as
torch does by default. Generations per hour = generations finished by all runs together / wall time. Runs differ
in their seed only, so every layout trains the same amount.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scl_hf.benchmarks import add_output_arguments, load_average, report, run_entry

REPO = Path(__file__).resolve().parents[1]
HEADING = "## CPU threads: one run or several at once (`scripts/bench_threads.py`)"


def layout(recipe: Path, runs: int, threads: int, generations: int, out: Path) -> float:
    """Wall seconds for ``runs`` runs of ``recipe`` at once, ``threads`` torch threads each."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = []
    start = time.perf_counter()
    for k in range(runs):
        argv = [sys.executable, "-m", "scl_hf.cli", "run", "--config", str(recipe), "--publish", "false",
                "--output_dir", str(out), "--run_name", f"{recipe.stem}_{runs}x{threads}_{k}", "--seed", str(k),
                "--num_generations", str(generations), "--torch_num_threads", str(threads)]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a run failed ({proc.returncode}): {err[-2000:]}")
    return time.perf_counter() - start


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "mini_collapse.yaml")
    parser.add_argument("--generations", type=int, default=2, help="generations of each run")
    parser.add_argument("--oversubscribed", action="store_true", help="also every run with every core")
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    load_before = load_average()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    layouts = [(1, cores), (cores, 1)] + ([(cores, cores)] if args.oversubscribed else [])
    lines = ["| layout | runs | threads per run | generations in all | wall s | generations per hour |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="scl_hf_bench_threads_") as tmp:
        for runs, threads in layouts:
            seconds = layout(args.config, runs, threads, args.generations, Path(tmp))
            total = runs * args.generations
            lines.append(f"| {runs} run{'s' if runs > 1 else ''} x {threads} thread{'s' if threads > 1 else ''} "
                         f"| {runs} | {threads} | {total} | {seconds:.0f} | {3600 * total / seconds:.0f} |")
    report(run_entry(__file__, argv, load_before, "\n".join(lines), f"recipe {args.config.name}"), args, HEADING,
           append=True)


if __name__ == "__main__":
    main()
