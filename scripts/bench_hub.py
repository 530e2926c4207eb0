"""Benchmark of the Hub path at the paper's shape: publish a generation to the embedded Hub, load it back, sync it.

Usage:
    python scripts/bench_hub.py                # print the table
    python scripts/bench_hub.py --write        # ... and rewrite its section of docs/BENCHMARKS.md

Builds a run directory with two paper-shape generations (GPT-2 6x384, 10.75M parameters, 43 MB of
safetensors; 10,000 training rows and 10,000 samples each, as the loop writes them), then times:
publishing each generation to an embedded Hub started in this process (one model commit, one
dataset commit, tags), publishing both again (the resume case: nothing new), loading a generation
into an empty cache with stock ``AutoModelForCausalLM``/``AutoTokenizer`` and ``load_dataset``, a
raw download of the weights through ``resolve``, and ``sync_run`` of both generations to a second
embedded Hub. Everything is on loopback: these are the costs the Hub adds to a loop generation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from scl_hf.benchmarks import add_output_arguments, facts, load_average, report

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Hub: publishing and loading a paper-shape generation (`scripts/bench_hub.py`)"


def make_run(out: Path) -> object:
    """Two complete paper-shape generations laid out as the loop's contract says."""
    import torch
    from datasets import Dataset

    from scl_hf.config import build_config, save_config
    from scl_hf.cycles import rows
    from scl_hf.expressions import classify, depth, make_real_dataset
    from scl_hf.model import make_model
    from scl_hf.rundir import CONFIG, METRICS, MODEL, SAMPLES, TRAIN_DATA, gen_dir, tag
    from scl_hf.tokenizer import build_tokenizer

    cfg = build_config({"run_name": "bench", "output_dir": str(out / "runs"), "embedded_hub_root": str(out / "hub"),
                        "num_generations": 2})
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True)
    save_config(cfg, run_dir / CONFIG)
    tokenizer = build_tokenizer(cfg.model.n_positions)
    d0 = make_real_dataset(10_000, seed=0)
    for g in range(2):
        gen = gen_dir(run_dir, g)
        torch.manual_seed(g)
        model = make_model(cfg.model, tokenizer)  # ModelConfig's defaults: the paper's shape
        model.save_pretrained(gen / MODEL)
        tokenizer.save_pretrained(gen / MODEL)
        train = d0 if g == 0 else make_real_dataset(10_000, seed=g)
        data = rows(train, "real", -1) if g == 0 else rows(train, "synthetic", g - 1, tag(g - 1))
        data.save_to_disk(str(gen / TRAIN_DATA))
        samples = make_real_dataset(10_000, seed=100 + g)
        labels = [classify(s) for s in samples]
        Dataset.from_dict({"text": samples, "label": labels, "depth": [depth(s) or -1 for s in samples],
                           "truncated": [False] * len(samples), "generation": [g] * len(samples),
                           "model_revision": [tag(g)] * len(samples)}).save_to_disk(str(gen / SAMPLES))
        (gen / METRICS).write_text(json.dumps({
            "generation": g, "metrics": {"num_samples": len(samples), "true_rate": labels.count("true") / len(labels)},
            "train": {}, "sampling": {}, "data": {"num_rows": len(train), "origin_counts": {}, "curation": None}}))
    return cfg


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    add_output_arguments(parser, ROOT / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="scl_hf_bench_hub_") as tmp:
        tmp = Path(tmp)
        os.environ["HF_HOME"] = str(tmp / "hf_home")  # an empty cache: loads really download
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        from scl_hf.hub.load import load_generation, load_generation_data, point_libraries_at
        from scl_hf.hub.publish import publish_generation
        from scl_hf.hub.server import HubServer
        from scl_hf.hub.sync import sync_run
        from scl_hf.hub.target import open_hub
        from scl_hf.rundir import MODEL, gen_dir, tag

        cfg = make_run(tmp)
        target = open_hub(cfg)  # the embedded Hub, served from this process
        point_libraries_at(target.endpoint)  # the loads below read it through the libraries' global endpoint

        rows = []
        weights = (gen_dir(cfg.run_dir, 0) / MODEL / "model.safetensors").stat().st_size
        for g in (0, 1):
            seconds, _ = _timed(lambda g=g: publish_generation(cfg.run_dir, g, cfg, target))
            rows.append((f"publish {tag(g)} (first time)", seconds))
        seconds, _ = _timed(lambda: [publish_generation(cfg.run_dir, g, cfg, target) for g in (0, 1)])
        rows.append(("publish both again (resume: no new commit)", seconds))
        seconds, _ = _timed(lambda: load_generation(target.model_repo_id, 1))
        rows.append((f"load_generation {tag(1)}, empty cache (model + tokenizer)", seconds))
        seconds, _ = _timed(lambda: load_generation(target.model_repo_id, 1))
        rows.append((f"load_generation {tag(1)}, cached", seconds))
        seconds, data = _timed(lambda: load_generation_data(target.dataset_repo_id, 1))
        rows.append((f"load_generation_data {tag(1)}, empty cache ({len(data['train']):,} + "
                     f"{len(data['samples']):,} rows)", seconds))
        url = f"{target.endpoint}/{target.model_repo_id}/resolve/{tag(1)}/model.safetensors"
        seconds, body = _timed(lambda: urllib.request.urlopen(url).read())
        assert len(body) == weights
        rows.append((f"GET model.safetensors ({weights / 1e6:.1f} MB): {weights / 1e6 / seconds:.0f} MB/s", seconds))
        mirror = HubServer(tmp / "mirror").start()
        seconds, _ = _timed(lambda: sync_run(cfg.run_dir, to=mirror.url, namespace="mirror"))
        rows.append(("sync_run of both generations to a second embedded Hub", seconds))
        mirror.stop()
        target.close()
    text = "\n".join([
        SECTION,
        "",
        facts(__file__, argv, load_before),
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {name} | {seconds:.2f} |" for name, seconds in rows],
        "",
        "Paper shape: GPT-2 6 layers x 384, 10.75M parameters in float32; each generation's dataset config holds "
        "10,000 training rows and 10,000 samples. One process: the embedded Hub runs in a thread of the timed "
        "process, on loopback, with its store on the local disk. Publishing includes writing the Parquet shards "
        "and rendering the cards; loads go through `from_pretrained` / `load_dataset` with an empty HF cache.",
        "",
    ])
    report(text, args, SECTION, append=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
