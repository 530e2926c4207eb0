"""Cost of what the loop measures per generation besides training and sampling: the likelihoods of the ``eval``
block, the metric of S_t and the reference sample's metric, at the scale of a recipe.

Usage:
    python scripts/bench_eval.py                           # smoke and mini recipes: print the table
    python scripts/bench_eval.py --write                   # ... and append it to docs/BENCHMARKS.md
    python scripts/bench_eval.py --configs configs/paper.yaml --repeats 1   # the paper shape (minutes on a CPU)

Per recipe, exactly the loop's calls (``scl_hf.loop.Loop``): ``mean_nll`` of the held-out set H under a model of
the recipe's shape (``heldout_nll``) and of S_t under it (``samples_nll``; ``samples_nll_m0`` is the same call
under M_0, so the ``eval`` block costs H once and S_t twice), ``compute_metrics(S_t, training_texts=D_t,
real_texts=D0)`` and ``Loop.reference_metrics`` (drawing R_t and its metric against D0). The forward cost does
not depend on the weights, so the model is freshly initialized; S_t is stood in for by ``num_samples`` real
expressions of another seed (a model that has learned the language writes expressions of that length), and D_t
by D0. Times are the best of ``--repeats`` calls, after one untimed warm-up call of each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from scl_hf.benchmarks import add_output_arguments, load_average, report, run_entry, torch_stack
from scl_hf.config import parse_config
from scl_hf.expressions import make_real_dataset
from scl_hf.loop import Loop
from scl_hf.measures import compute_metrics
from scl_hf.model import make_model
from scl_hf.train import make_accelerator, mean_nll

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Per-generation measurement: eval block and metric (`scripts/bench_eval.py`)"
STAND_IN_SEED = 99  # the real expressions that stand in for S_t


def best_of(repeats: int, call) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``call()``, after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(config: Path, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(["--config", str(config), "--output_dir", tmp, "--publish", "false"])
        acc = make_accelerator(cfg.training, project_dir=tmp)
        loop = Loop(cfg, acc)
        torch.manual_seed(0)
        model = make_model(cfg.model, loop.tokenizer).eval()
        samples = make_real_dataset(cfg.sampling.num_samples, STAND_IN_SEED, cfg.data)
        d0 = loop.d0["text"]
        batch = cfg.training.per_device_train_batch_size
        heldout = best_of(repeats, lambda: mean_nll(model, loop.tokenizer, loop.heldout, acc, batch))
        on_samples = best_of(repeats, lambda: mean_nll(model, loop.tokenizer, samples, acc, batch))
        metric = best_of(repeats, lambda: compute_metrics(samples, training_texts=d0, real_texts=d0))
        reference = best_of(repeats, lambda: loop.reference_metrics(0, len(samples)))
    params = sum(p.numel() for p in model.parameters())
    shape = f"{cfg.model.n_layer}x{cfg.model.n_embd}, {params / 1e6:.2f}M"
    return {"recipe": config.name, "model": shape, "heldout": len(loop.heldout), "samples": len(samples),
            "d0": len(d0), "heldout_nll": heldout, "samples_nll": on_samples,
            "eval": heldout + 2 * on_samples, "metric": metric, "reference": reference}


def table(rows: list[dict]) -> str:
    lines = ["| recipe | model | H texts | S_t = R_t texts | D0 rows | heldout_nll s | samples_nll s (each of two) | "
             "eval block s | compute_metrics(S_t) s | reference (draw + metric) s | all s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        total = r["eval"] + r["metric"] + r["reference"]
        lines.append(f"| {r['recipe']} | {r['model']} | {r['heldout']:,} | {r['samples']:,} | {r['d0']:,} | "
                     f"{r['heldout_nll']:.3f} | {r['samples_nll']:.3f} | {r['eval']:.3f} | {r['metric']:.3f} | "
                     f"{r['reference']:.3f} | {total:.2f} |")
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", type=Path,
                        default=[REPO / "configs" / "smoke.yaml", REPO / "configs" / "mini_collapse.yaml"],
                        help="recipes whose scale is measured")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (the best counts)")
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    load_before = load_average()
    rows = [measure(config, args.repeats) for config in args.configs]
    report(run_entry(__file__, argv, load_before, table(rows), torch_stack()), args, HEADING, append=True)


if __name__ == "__main__":
    main()
