"""The self-consuming loop: for each generation build D_t, train M_t, sample S_t, measure, save.

Run directory (DESIGN.md), every stage written to a temporary name and renamed when complete, so a
kill at any moment leaves only whole stages behind and the next run redoes just the missing ones:

    runs/<run_name>/config.yaml          resolved config, written first
    runs/<run_name>/gen_07/train_data/   exactly what M_07 trained on (provenance columns)
    runs/<run_name>/gen_07/pool/         accumulate_subsample only: the pool D_08 is drawn from
    runs/<run_name>/gen_07/model/        save_pretrained output (model + tokenizer)
    runs/<run_name>/gen_07/samples/      S_07 with label, depth and truncated columns
    runs/<run_name>/gen_07/metrics.json  written last: the generation is complete

Everything is a function of the config and the files of earlier generations, and every random
choice is seeded from ``seed`` and the generation, so a resumed run produces the same datasets and
metrics as an uninterrupted one (on CPU, with the same number of processes).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from datasets import Dataset, load_from_disk
from transformers import AutoModelForCausalLM

from scl_hf.config import Config, ConfigError, diff_configs, load_config, save_config
from scl_hf.cycles import NextDataset, build_next_dataset, real_dataset, revision
from scl_hf.expressions import parse
from scl_hf.metrics import compute_metrics
from scl_hf.model import make_model
from scl_hf.sample import sample_expressions
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import make_accelerator, train_model

# Keys that may change between a run and its resume: they do not alter any finished generation.
RESUMABLE_KEYS = frozenset({"num_generations", "report_to", "logging_steps", "push_to_hub", "publish", "hub_model_id",
                            "hub_dataset_id", "hub_private_repo", "embedded_hub_root"})


def gen_dir(run_dir: Path, generation: int) -> Path:
    return run_dir / f"gen_{generation:02d}"


def is_complete(run_dir: Path, generation: int) -> bool:
    return (gen_dir(run_dir, generation) / "metrics.json").is_file()


def _write_atomically(final: Path, write) -> None:
    """Call ``write(tmp_path)``, then rename tmp to ``final``: readers see all of it or nothing."""
    tmp = final.with_name(f".tmp-{final.name}")
    final.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    write(tmp)
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    os.replace(tmp, final)


def _write_json(path: Path, payload: dict) -> None:
    _write_atomically(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8"))


def check_resume(cfg: Config, allow_config_change: bool = False) -> None:
    """Refuse to resume a run whose saved config differs from ``cfg`` (outside ``RESUMABLE_KEYS``).

    Raises:
        ConfigError: listing every differing key, unless ``allow_config_change`` is True.
    """
    saved = cfg.run_dir / "config.yaml"
    if not saved.is_file():
        return
    changed = [(k, a, b) for k, a, b in diff_configs(load_config(saved), cfg) if k not in RESUMABLE_KEYS]
    if changed and not allow_config_change:
        lines = "\n".join(f"  {k}: {a!r} (saved) -> {b!r} (now)" for k, a, b in changed)
        raise ConfigError(f"{cfg.run_dir} was started with a different config:\n{lines}\n"
                          "Use another run_name, or pass --allow_config_change to continue with the new values.")


def _samples_dataset(texts: list[str], truncated: list[bool], generation: int) -> Dataset:
    trees = [parse(t) for t in texts]
    return Dataset.from_dict({
        "text": texts,
        "label": ["syntax_error" if t is None else ("true" if t.value else "false") for t in trees],
        "depth": [-1 if t is None else t.depth for t in trees],
        "truncated": truncated,
        "generation": [generation] * len(texts),
        "model_revision": [revision(generation)] * len(texts),
    })


def _origin_counts(ds: Dataset) -> dict:
    origins = ds["origin"]
    return {o: origins.count(o) for o in ("real", "synthetic", "fresh")}


class Loop:
    """One run: the config, its directory, one Accelerator and the tokenizer, shared by all generations."""

    def __init__(self, cfg: Config, accelerator: Accelerator, hub_target=None):
        self.cfg = cfg
        self.acc = accelerator
        self.run_dir = cfg.run_dir
        self.hub_target = hub_target
        self.tokenizer = build_tokenizer(cfg.model.n_positions)
        self.d0 = real_dataset(cfg)

    def print(self, *args) -> None:
        self.acc.print(*args, flush=True)

    # --- stages: each returns what later stages need, from disk when it was already done ---

    def _missing(self, path: Path) -> bool:
        """Whether ``path`` is missing, as every process saw it before any of them writes it."""
        missing = not path.exists()
        self.acc.wait_for_everyone()
        return missing

    def _stage(self, path: Path, make, save) -> None:
        """Run ``make()`` on every process if ``path`` is missing; the main process saves it atomically."""
        if self._missing(path):
            value = make()
            if self.acc.is_main_process:
                _write_atomically(path, lambda tmp: save(value, tmp))
            self.acc.wait_for_everyone()

    def train_data(self, t: int) -> tuple[Dataset, dict | None]:
        path = gen_dir(self.run_dir, t) / "train_data"
        record_path = gen_dir(self.run_dir, t) / "curation.json"
        if t == 0:
            self._stage(path, lambda: NextDataset(self.d0, None), self._save_next)
        else:
            self._stage(path, lambda: self.next_dataset(t), self._save_next)
        record = json.loads(record_path.read_text()) if record_path.exists() else None
        return load_from_disk(str(path)), record

    def _save_next(self, nxt: NextDataset, tmp: Path) -> None:
        # pool and curation record first: train_data's rename is what marks the stage complete
        parent = tmp.parent
        if nxt.pool is not None:
            _write_atomically(parent / "pool", lambda p: nxt.pool.save_to_disk(str(p)))
        _write_json(parent / "curation.json", {"curation": nxt.curation})
        nxt.dataset.save_to_disk(str(tmp))

    def next_dataset(self, t: int) -> NextDataset:
        """D_t from D0, D_{t-1}, S_{t-1} and, when curation needs more samples, M_{t-1}."""
        prev = gen_dir(self.run_dir, t - 1)
        current = load_from_disk(str(prev / "train_data"))
        samples = load_from_disk(str(prev / "samples"))["text"]
        pool = load_from_disk(str(prev / "pool")) if (prev / "pool").exists() else self.d0
        model = None

        def sample_more(k: int, round_: int) -> list[str]:
            nonlocal model
            if model is None:
                model = AutoModelForCausalLM.from_pretrained(prev / "model")
            seed = self._seed(t - 1) * 1000 + round_  # fresh randomness per round, same on resume
            return sample_expressions(model, self.tokenizer, self.cfg.sampling, self.acc, seed=seed,
                                      num_samples=k).texts

        return build_next_dataset(self.cfg, t, self.d0, current, samples, sample_more, pool=pool)

    def _seed(self, t: int) -> int:
        return self.cfg.training.seed + t

    def model(self, t: int, data: Dataset):
        path = gen_dir(self.run_dir, t) / "model"
        if self._missing(path):
            torch.manual_seed(self._seed(t))
            if self.cfg.training.init_from == "previous" and t > 0:
                model = AutoModelForCausalLM.from_pretrained(gen_dir(self.run_dir, t - 1) / "model")
            else:
                model = make_model(self.cfg.model, self.tokenizer)
            res = train_model(model, self.tokenizer, data, self.cfg.training, self.acc, seed=self._seed(t),
                              step_offset=t * self.cfg.training.max_steps)
            result = res.to_json()
            if self.acc.is_main_process:
                def save(tmp: Path) -> None:
                    model.save_pretrained(tmp)
                    self.tokenizer.save_pretrained(tmp)
                    (tmp / "train_result.json").write_text(json.dumps(result, indent=2) + "\n")
                _write_atomically(path, save)
            self.acc.wait_for_everyone()
            del model
        model = AutoModelForCausalLM.from_pretrained(path)
        result = json.loads((path / "train_result.json").read_text())
        return model, result

    def samples(self, t: int, model) -> tuple[Dataset, dict]:
        path = gen_dir(self.run_dir, t) / "samples"
        info_path = gen_dir(self.run_dir, t) / "sampling.json"

        def make():
            res = sample_expressions(model, self.tokenizer, self.cfg.sampling, self.acc, seed=self._seed(t))
            info = {"num_samples": len(res.texts), "num_truncated": sum(res.truncated), "seconds": res.seconds}
            return _samples_dataset(res.texts, res.truncated, t), info

        def save(value, tmp: Path) -> None:
            _write_json(info_path, value[1])
            value[0].save_to_disk(str(tmp))

        self._stage(path, make, save)
        return load_from_disk(str(path)), json.loads(info_path.read_text())

    # --- one generation and the whole run ---

    def generation(self, t: int) -> dict:
        start = time.time()
        data, curation = self.train_data(t)
        model, train = self.model(t, data)
        samples, sampling = self.samples(t, model)
        payload = None
        if self.acc.is_main_process:
            metrics = compute_metrics(samples["text"], references=data["text"])
            payload = {
                "generation": t,
                "metrics": metrics,
                "train": train,
                "sampling": sampling,
                "data": {"num_rows": len(data), "origin_counts": _origin_counts(data),
                         "curation": curation["curation"] if curation else None},
            }
            _write_json(gen_dir(self.run_dir, t) / "metrics.json", payload)
            m = metrics
            self.print(f"gen {t:02d} | true {m['true_rate']:.3f} false {m['false_rate']:.3f} "
                       f"syntax {m['syntax_error_rate']:.3f} | diversity {m['diversity']:.4f} | "
                       f"unique {m['unique_rate']:.3f} | val_loss {train['best_val_loss']:.4f} | "
                       f"rows {len(data)} | {time.time() - start:.1f}s")
            self.acc.log({f"generation/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, step=t)
        self.acc.wait_for_everyone()
        return payload

    def publish(self, t: int) -> None:
        """Publish generation t (main process; idempotent, so a resumed run re-checks finished ones)."""
        if self.acc.is_main_process and self.hub_target is not None:
            from scl_hf.hub.publish import publish_generation

            publish_generation(self.run_dir, t, self.cfg, self.hub_target)

    def report(self) -> None:
        """Refresh report.md and its figures from the run directory (main process, well under a second)."""
        if self.acc.is_main_process:
            from scl_hf.report import write_run_report

            write_run_report(self.run_dir)

    def run(self) -> Path:
        self.print(f"{self.run_dir}: {self.cfg.cycle.cycle}, curation {self.cfg.cycle.curation}, "
                   f"{self.cfg.loop.num_generations} generations on {self.acc.num_processes} process(es), "
                   f"{self.acc.device}")
        for t in range(self.cfg.loop.num_generations):
            if is_complete(self.run_dir, t):
                self.print(f"gen {t:02d} | complete, skipped")
                self.publish(t)
            else:
                self.generation(t)
                self.acc.free_memory()
                self.publish(t)
                self.report()  # after every generation, so a running experiment can be watched
            self.acc.wait_for_everyone()
        self.report()
        return self.run_dir


def _quiet_libraries() -> None:
    """One progress bar (training) and one line per generation: silence the libraries' own bars."""
    import datasets
    import huggingface_hub
    import transformers

    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def run_loop(cfg: Config, allow_config_change: bool = False, hub_target=None) -> Path:
    """Run (or resume) the loop described by ``cfg``; returns the run directory."""
    _quiet_libraries()
    check_resume(cfg, allow_config_change)  # on every process, so that all of them stop together
    accelerator = make_accelerator(cfg.training, project_dir=str(cfg.run_dir))
    if accelerator.is_main_process:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(cfg.run_dir / "config.yaml", lambda tmp: save_config(cfg, tmp))
    accelerator.wait_for_everyone()
    if cfg.training.report_to != "none":
        accelerator.init_trackers(cfg.loop.run_name, config=cfg.to_flat())
    try:
        return Loop(cfg, accelerator, hub_target).run()
    finally:
        accelerator.end_training()
