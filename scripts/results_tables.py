"""Print the per-generation tables of docs/RESULTS.md from run directories.

    python scripts/results_tables.py runs/mini_full_synthetic runs/mini_expanding_fresh25

Correctness, diversity and likelihoods come from each generation's metrics.json; the distribution
measures are recomputed from the saved samples with ``compute_metrics(samples, training_texts=D_t,
real_texts=D0)``, exactly what the loop writes into metrics.json, so runs made before the loop wrote
them get the same numbers. A value the loop did write must equal the recomputed one (checked).
"""

import json
import sys
from collections.abc import Callable
from pathlib import Path

from datasets import load_from_disk

from scl_hf.measures import compute_metrics
from scl_hf.report import markdown_table
from scl_hf.rundir import METRICS, SAMPLES, TRAIN_DATA, gen_dir, generation_dirs


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _measure(key: str, digits: int = 3) -> Callable[[dict], str]:
    """The getter of a measure recomputed from the generation's samples."""
    return lambda gen: _fmt(gen["measures"][key], digits)


def _likelihood(key: str) -> Callable[[dict], str]:
    """The getter of a value of metrics.json's ``eval`` block (n/a where the run predates it)."""
    return lambda gen: _fmt(gen["eval"].get(key), 4)


COLUMNS = [
    ("gen", lambda gen: str(gen["generation"])),
    ("rows", lambda gen: str(gen["data"]["num_rows"])),
    ("true", _measure("true_rate")),
    ("false", _measure("false_rate")),
    ("syntax error", _measure("syntax_error_rate")),
    ("diversity", _measure("diversity", 4)),
    ("unique", _measure("unique_rate")),
    ("novelty", _measure("novelty_rate")),
    ("best val loss", lambda gen: _fmt(gen["train"]["best_val_loss"], 4)),
    ("held-out NLL", _likelihood("heldout_nll")),
    ("NLL(S_t; M_0)", _likelihood("samples_nll_m0")),
    ("NLL(S_t; M_t)", _likelihood("samples_nll")),
    ("JSD depth", _measure("jsd_depth")),
    ("JSD length", _measure("jsd_length")),
    ("tail cov. depth", _measure("tail_coverage_depth")),
    ("distinct-2", _measure("distinct_2")),
    ("canonical unique", _measure("canonical_unique_rate")),
]


def generations(run: Path) -> list[dict]:
    """Per generation: its number, the ``data``, ``train`` and ``eval`` blocks of its metrics.json, and the
    measures recomputed from its samples (``measures``), which must equal those metrics.json holds."""
    d0 = load_from_disk(str(gen_dir(run, 0) / TRAIN_DATA))["text"]
    out = []
    for g, folder in generation_dirs(run):
        m = json.loads((folder / METRICS).read_text())
        x = compute_metrics(load_from_disk(str(folder / SAMPLES))["text"],
                            training_texts=load_from_disk(str(folder / TRAIN_DATA))["text"], real_texts=d0)
        assert all(x[k] == v for k, v in m["metrics"].items()), f"{folder}: metrics.json differs from compute_metrics"
        out.append({"generation": g, "data": m["data"], "train": m["train"], "eval": m.get("eval", {}), "measures": x})
    return out


def table(run: Path) -> str:
    return markdown_table(COLUMNS, generations(run))


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"\n{Path(path).name}\n\n{table(Path(path))}")
