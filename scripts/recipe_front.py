"""The front of a recipe search: generation 0's true rate and syntax errors against the seconds a generation costs.

Usage:
    python scripts/recipe_front.py docs/results/cpu_semantics_search    # a sweep folder or an export of one

One row per configuration (runs equal up to their seeds, ``scl_hf.runs.group_runs``), from generation 0 of each
run: the true rate and the syntax error rate at the recipe's temperature (mean [95% t-interval] over seeds, and the
seeds' values), the held-out NLL, the best validation step, and the cost of the generation in seconds of one
thread: training (``train.seconds``) plus sampling (``sampling.seconds``). Sorted by cost.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scl_hf.report import markdown_table
from scl_hf.runs import Group, fmt, group_runs, load_run
from scl_hf.stats import t_interval


def _at0(group: Group, block: str, key: str) -> list[float]:
    return [run.generations[0][block][key] for run in group.runs]


def _interval(values: list[float], digits: int = 3) -> str:
    mean, low, high = t_interval(values)
    seeds = ", ".join(fmt(v, digits) for v in values)
    return f"{fmt(mean, digits)} [{fmt(low, digits)}, {fmt(high, digits)}] ({seeds})"


def _shape(group: Group) -> str:
    cfg = group.runs[0].config
    return (f"{cfg.data.dataset_size} rows, {cfg.training.max_steps} steps, {cfg.model.n_layer} x {cfg.model.n_embd}, "
            f"lr {cfg.training.learning_rate:g}")


def _cost(group: Group) -> float:
    return sum(t + s for t, s in zip(_at0(group, "train", "seconds"), _at0(group, "sampling", "seconds"),
                                     strict=True)) / len(group.runs)


COLUMNS = [
    ("configuration", _shape),
    ("seeds", lambda g: str(len(g.runs))),
    ("true_rate", lambda g: _interval(_at0(g, "metrics", "true_rate"))),
    ("syntax_error_rate", lambda g: _interval(_at0(g, "metrics", "syntax_error_rate"), 4)),
    ("heldout_nll", lambda g: fmt(sum(_at0(g, "eval", "heldout_nll")) / len(g.runs), 3)),
    ("best step", lambda g: ", ".join(str(s) for s in _at0(g, "train", "best_step"))),
    ("s per generation (train + sample)", lambda g: f"{_cost(g):.0f}"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a sweep's output folder or an export of it")
    args = parser.parse_args(argv)
    runs = [load_run(p) for p in sorted(args.folder.iterdir()) if (p / "config.yaml").is_file()]
    groups = [g for g in group_runs([r for r in runs if r.generations]) if g.generations]
    print(markdown_table(COLUMNS, sorted(groups, key=_cost)))


if __name__ == "__main__":
    main()
