"""Speed of the correction function (``scl_hf.correction.correct_text``) on 10,000 realistic samples.

Usage:
    python scripts/bench_correct.py                 # print the table
    python scripts/bench_correct.py --write         # ... and append it to docs/BENCHMARKS.md
    python scripts/bench_correct.py --samples 1000  # a quick look

The samples stand in for a paper-shape model's output (about 12% syntax errors and 35% False): real expressions
(``make_real_dataset``, depth 1..5) of which a seeded 53% get random literals flipped until False (at most six
flips; the table gives the shares reached) and 13% one or two random token edits that break the syntax (a token
deleted, a random token or a fragment inserted, or the tail cut off), the rest left True. Every sample goes
through ``correct_text`` with the default budget of 2 edits, as the ``correct`` step calls it; the blind
enumeration of every edit and pair of edits (what the search avoids) is timed on ``--subset`` of the samples
that need a correction and scaled up.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from scl_hf.benchmarks import add_output_arguments, load_average, report, run_entry
from scl_hf.correction import DEFAULT_MAX_EDITS, correct_text
from scl_hf.diversity import word_tokens
from scl_hf.expressions import TOKENS, GeneratorConfig, label, make_real_dataset, parse

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Correction: the `correct` step (`scripts/bench_correct.py`)"
REAL = GeneratorConfig()  # the real data's depth bounds (make_real_dataset's), which a correction must respect


def realistic_samples(n: int, seed: int = 0) -> list[str]:
    """``n`` samples: real expressions, 53% flipped towards False (about 35% end False), 13% with broken syntax."""
    rng = random.Random(seed)
    out = []
    for text in make_real_dataset(n, seed):
        tokens = word_tokens(text)
        roll = rng.random()
        if roll < 0.53:  # a share of them stays True after six flips: 53% tried gives about 35% False
            literals = [i for i, t in enumerate(tokens) if t in ("True", "False")]
            for _ in range(6):
                i = rng.choice(literals)
                tokens[i] = "False" if tokens[i] == "True" else "True"
                if parse(" ".join(tokens)).value is False:
                    break
        elif roll < 0.66:
            for _ in range(rng.choice((1, 2))):
                kind, i = rng.random(), rng.randrange(len(tokens) + 1)
                if kind < 0.35 and tokens:
                    del tokens[min(i, len(tokens) - 1)]
                elif kind < 0.7:
                    tokens.insert(i, rng.choice([*TOKENS, "Tr", "ue"]))
                else:
                    tokens = tokens[:max(1, i)]
        out.append(" ".join(tokens).replace("( ", "(").replace(" )", ")"))
    return out


def naive_distance(tokens: Sequence[str], min_depth: int, max_depth: int,
                   max_edits: int = DEFAULT_MAX_EDITS) -> int | None:
    """The definition by blind enumeration (every edit, then every pair, each candidate parsed): the fewest edits
    from ``tokens`` to a True expression of depth ``min_depth..max_depth``, None beyond ``max_edits``.
    ``correct`` finds the same number without enumerating: this benchmark times the two, and tests/test_correction.py
    checks one against the other.

    >>> naive_distance(["not", "(", "True"], 1, 5)
    1
    """
    level = {tuple(tokens)}
    for edits in range(max_edits + 1):
        for candidate in level:
            tree = parse(" ".join(candidate))
            if tree is not None and tree.value and min_depth <= tree.depth <= max_depth:
                return edits
        nxt = set()
        for t in level:
            for i in range(len(t) + 1):
                nxt.update(t[:i] + (token,) + t[i:] for token in TOKENS)
                if i < len(t):
                    nxt.add(t[:i] + t[i + 1:])
                    nxt.update(t[:i] + (token,) + t[i + 1:] for token in TOKENS)
        level = nxt
    return None


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="samples to correct")
    parser.add_argument("--subset", type=int, default=20, help="samples the blind enumeration is timed on")
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    load_before = load_average()
    samples = realistic_samples(args.samples)
    labels = Counter(label(parse(t)) for t in samples)
    start = time.perf_counter()
    results = [correct_text(t, REAL.min_depth, REAL.max_depth) for t in samples]
    seconds = time.perf_counter() - start
    edits = Counter("dropped" if r is None else r[1] for r in results)
    needing = [t for t, r in zip(samples, results, strict=True) if r is None or r[1] > 0][:args.subset]
    start = time.perf_counter()
    for t in needing:
        naive_distance(word_tokens(t), REAL.min_depth, REAL.max_depth)
    blind_each = (time.perf_counter() - start) / max(len(needing), 1)
    fixed = sum(v for k, v in edits.items() if k not in (0, "dropped"))
    blind_total = blind_each * (fixed + edits["dropped"])
    n = len(samples)
    table = "\n".join([
        "| samples | syntax errors | False | kept as they are | corrected: 1 edit | 2 edits | dropped | "
        "seconds | ms per sample | blind enumeration, scaled, s | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {n:,} | {labels['syntax_error'] / n:.1%} | {labels['false'] / n:.1%} | {edits[0]:,} | {edits[1]:,} | "
        f"{edits[2]:,} | {edits['dropped']:,} | {seconds:.2f} | {1000 * seconds / n:.3f} | {blind_total:.0f} | "
        f"{blind_total / seconds:.0f}x |"])
    report(run_entry(__file__, argv, load_before, table), args, HEADING, append=True)


if __name__ == "__main__":
    main()
