"""Speed of selection from a pool (``scl_hf.selection``): 10,000 kept of 20,000, each method side by side.

Usage:
    python scripts/bench_select.py              # print the table
    python scripts/bench_select.py --write      # ... and append it to docs/BENCHMARKS.md
    python scripts/bench_select.py --pool 4000  # a quick look (keeps half)

Two pools of ``--pool`` samples stand in for a model's output: "distinct", real expressions
(``make_real_dataset``, depth 1..5, every one different: the slowest case for ``novelty``, since every sample
competes), and "30% copies", where each sample repeats an earlier one with probability 0.3 (a model that has
begun to repeat itself). Each method keeps half of the pool, ``novelty`` on one thread as the loop runs it;
``likelihood`` ranks by a stand-in score (minus the length: a short sample is likely). The table also gives what
was kept: its diversity (mean normalized token edit distance, exact), its distinct share, and the smallest distance
between two kept samples, the quantity farthest-point sampling maximizes.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from scl_hf.benchmarks import add_output_arguments, load_average, report, run_entry
from scl_hf.diversity import diversity, encode
from scl_hf.expressions import make_real_dataset
from scl_hf.selection import select_likely, select_novel, select_random

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Selection: `select` from a pool (`scripts/bench_select.py`)"


def pools(n: int, seed: int = 0) -> dict[str, list[str]]:
    """The two pools of the module docstring."""
    distinct = make_real_dataset(n, seed)
    rng = random.Random(seed)
    copies: list[str] = []
    for text in make_real_dataset(n, seed + 1):
        copies.append(rng.choice(copies) if copies and rng.random() < 0.3 else text)
    return {"distinct": distinct, "30% copies": copies}


def closest_pair(texts: list[str]) -> float:
    """The smallest normalized token edit distance between two of ``texts`` (0 when two are equal)."""
    if len(set(texts)) < len(texts):
        return 0.0
    seqs = encode(texts)
    best = 1.0
    for start in range(0, len(seqs), 512):
        block = process.cdist(seqs[start:start + 512], seqs, scorer=Levenshtein.normalized_distance,
                              dtype=np.float32, workers=-1)
        for i in range(block.shape[0]):
            block[i, start + i] = 1.0  # a sample and itself
        best = min(best, float(block.min()))
    return best


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=20_000, help="samples in each pool (half are kept)")
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    load_before = load_average()
    keep = args.pool // 2
    lines = ["| pool | distinct in pool | select | kept | seconds | diversity of kept | distinct kept | "
             "closest kept pair |", "|---|---|---|---|---|---|---|---|"]
    for name, pool in pools(args.pool).items():
        methods = {"novelty": lambda p=pool: select_novel(p, keep),
                   "likelihood": lambda p=pool: select_likely([-len(t) for t in p], keep),
                   "random": lambda p=pool: select_random(len(p), keep, seed=0)}
        for method, run in methods.items():
            start = time.perf_counter()
            chosen = run()
            seconds = time.perf_counter() - start
            kept = [pool[i] for i in chosen]
            lines.append(f"| {name} | {len(set(pool)):,} of {len(pool):,} | {method} | {len(kept):,} | "
                         f"{seconds:.2f} | {diversity(kept):.4f} | {len(set(kept)) / len(kept):.3f} | "
                         f"{closest_pair(kept):.3f} |")
    report(run_entry(__file__, argv, load_before, "\n".join(lines)), args, HEADING, append=True)


if __name__ == "__main__":
    main()
