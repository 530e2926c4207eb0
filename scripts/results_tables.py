"""Print the per-generation tables of docs/RESULTS.md from run directories.

    python scripts/results_tables.py runs/mini_full_synthetic runs/mini_expanding_fresh25

Correctness, diversity and likelihoods come from each generation's metrics.json; the distribution
measures are recomputed from the saved samples with ``compute_metrics(samples, training_texts=D_t,
real_texts=D0)``, exactly what the loop writes into metrics.json, so runs made before the loop wrote
them get the same numbers. A value the loop did write must equal the recomputed one (checked).
"""

import json
import sys
from pathlib import Path

from datasets import load_from_disk

from scl_hf.measures import compute_metrics
from scl_hf.rundir import METRICS, SAMPLES, TRAIN_DATA, gen_dir, generation_dirs

COLUMNS = ["gen", "rows", "true", "false", "syntax error", "diversity", "unique", "novelty", "best val loss",
           "held-out NLL", "NLL(S_t; M_0)", "NLL(S_t; M_t)", "JSD depth", "JSD length", "tail cov. depth",
           "distinct-2", "canonical unique"]


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(run: Path) -> str:
    d0 = load_from_disk(str(gen_dir(run, 0) / TRAIN_DATA))["text"]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for g, folder in generation_dirs(run):
        m = json.loads((folder / METRICS).read_text())
        written, e = m["metrics"], m.get("eval", {})
        x = compute_metrics(load_from_disk(str(folder / SAMPLES))["text"],
                            training_texts=load_from_disk(str(folder / TRAIN_DATA))["text"], real_texts=d0)
        assert all(x[k] == v for k, v in written.items()), f"{folder}: metrics.json differs from compute_metrics"
        cells = [str(g), str(m["data"]["num_rows"]), _fmt(x["true_rate"]), _fmt(x["false_rate"]),
                 _fmt(x["syntax_error_rate"]), _fmt(x["diversity"], 4), _fmt(x["unique_rate"]),
                 _fmt(x["novelty_rate"]), _fmt(m["train"]["best_val_loss"], 4), _fmt(e.get("heldout_nll"), 4),
                 _fmt(e.get("samples_nll_m0"), 4), _fmt(e.get("samples_nll"), 4), _fmt(x["jsd_depth"]),
                 _fmt(x["jsd_length"]), _fmt(x["tail_coverage_depth"]), _fmt(x["distinct_2"]),
                 _fmt(x["canonical_unique_rate"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"\n{Path(path).name}\n\n{table(Path(path))}")
