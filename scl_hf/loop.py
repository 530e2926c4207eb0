"""The self-consuming loop: for each generation build D_t, train M_t, sample S_t, measure, publish.

Every stage of a generation is a folder or file of the run directory (``scl_hf.rundir`` lists them),
written under a temporary name and renamed when whole, so a kill at any moment leaves only whole
stages behind and the next run redoes just the missing ones. Everything is a function of the config
and the files of earlier generations, and every random choice comes from ``rundir.seed_for``, so a
resumed run produces the same datasets and metrics as an uninterrupted one (on CPU, with the same
number of processes).

All processes of a launch train and sample together; only the main process writes the run
directory, opens the Hub (``hub.target.open_hub``) and publishes. The others never touch a Hub.
docs/ARCHITECTURE.md draws the data flow of one generation.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from datasets import Dataset, load_from_disk

from scl_hf.config import RESUMABLE_KEYS, Config, ConfigError, diff_configs, load_config, save_config
from scl_hf.cycles import NextDataset, build_next_dataset, heldout_texts, real_dataset, reference_texts
from scl_hf.errors import RunDirError, SclHfError
from scl_hf.expressions import label, parse
from scl_hf.measures import compute_metrics
from scl_hf.model import load_model, make_model
from scl_hf.rundir import (
    CONFIG,
    CURATION,
    METRICS,
    MODEL,
    POOL,
    SAMPLES,
    SAMPLING,
    TRAIN_DATA,
    TRAIN_HISTORY,
    TRAIN_RESULT,
    RunLock,
    gen_dir,
    marker_problem,
    read_json,
    seed_for,
    tag,
    write_atomically,
    write_json,
)
from scl_hf.runs import fmt
from scl_hf.sample import SampleResult, sample_expressions
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import make_accelerator, mean_nll, set_cpu_threads, train_model


def check_resume(cfg: Config, allow_config_change: bool = False) -> None:
    """Refuse to resume a run whose saved config differs from ``cfg`` (outside ``RESUMABLE_KEYS``).

    Raises:
        ConfigError: listing every differing key, unless ``allow_config_change`` is True.
    """
    saved = cfg.run_dir / CONFIG
    if not saved.is_file():
        return
    changed = [(k, a, b) for k, a, b in diff_configs(load_config(saved), cfg) if k not in RESUMABLE_KEYS]
    if changed and not allow_config_change:
        lines = "\n".join(f"  {k}: {a!r} (saved) -> {b!r} (now)" for k, a, b in changed)
        raise ConfigError(f"{cfg.run_dir} was started with a different config:\n{lines}\n"
                          "Use another run_name, or pass --allow_config_change to continue with the new values.")


def samples_dataset(drawn: SampleResult, generation: int) -> Dataset:
    """S_t as saved: each sample with its label, depth (-1: syntax error), truncation, its log-probability under
    M_t at temperature 1 and the tokens it sums over (``<eos>`` included), and provenance."""
    texts = drawn.texts
    trees = [parse(t) for t in texts]
    return Dataset.from_dict({
        "text": texts,
        "label": [label(tree) for tree in trees],
        "depth": [-1 if tree is None else tree.depth for tree in trees],
        "truncated": drawn.truncated,
        "logprob": drawn.logprobs,
        "num_tokens": drawn.token_counts,
        "generation": [generation] * len(texts),
        "model_revision": [tag(generation)] * len(texts),
    })


def _save_model(model, tokenizer, train_result: dict, folder: Path) -> None:
    """``save_pretrained`` of the model and its tokenizer, and the ``train`` block of metrics.json next to them."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_json(folder / TRAIN_RESULT, train_result)


def load_stage(path: Path) -> Dataset:
    """A saved dataset stage; a RunDirError naming the folder when it cannot be read (the stage is damaged)."""
    try:
        return load_from_disk(str(path))
    except Exception as err:  # datasets and pyarrow raise many kinds for a damaged folder
        raise RunDirError(f"cannot read {path} ({type(err).__name__}: {err}); delete the folder to have the "
                          "loop redo that stage") from None


def _per_token(logprobs: list[float], token_counts: list[int]) -> list[float]:
    """Each sample's log-probability per token: the score ``select: likelihood`` ranks samples by."""
    return [lp / max(n, 1) for lp, n in zip(logprobs, token_counts, strict=True)]


def _origin_counts(ds: Dataset) -> dict:
    origins = ds["origin"]
    return {o: origins.count(o) for o in ("real", "synthetic", "fresh")}


class Loop:
    """One run: the config, its directory, one Accelerator, the tokenizer and D0, shared by all generations."""

    def __init__(self, cfg: Config, accelerator: Accelerator, hub=None, threads: int | None = None):
        self.cfg = cfg
        self.threads = torch.get_num_threads() if threads is None else threads  # CPU threads of each process
        self.acc = accelerator
        self.run_dir = cfg.run_dir
        self.hub = hub  # a HubTarget on the main process when publishing, else None
        self.tokenizer = build_tokenizer(cfg.model.n_positions)
        self.d0 = real_dataset(cfg)
        self.d0_texts = self.d0["text"]  # the real set every generation's metric compares with
        self.heldout = heldout_texts(cfg, self.d0)  # H: never trained on; M_t's NLL on it is the collapse signal
        self._first_model = None  # M_0, loaded once for the samples' NLL under it

    def print(self, *args) -> None:
        self.acc.print(*args, flush=True)

    def _missing_on_all_processes(self, path: Path) -> bool:
        """Whether ``path`` is missing, as every process saw it before any of them writes it: each process looks,
        then all wait for one another (``wait_for_everyone``), so every process must call it at the same stage."""
        missing = not path.exists()
        self.acc.wait_for_everyone()
        return missing

    def load_model(self, folder: Path):
        """A checkpoint of this run on this process's device, hub kernels only where the config asks (model.py)."""
        return load_model(folder, self.acc.device, use_kernels=self.cfg.training.use_kernels)

    def first_model(self):
        """M_0 from the run directory, read once per run."""
        if self._first_model is None:
            self._first_model = self.load_model(gen_dir(self.run_dir, 0) / MODEL)
        return self._first_model

    def reference_metrics(self, t: int, size: int) -> dict:
        """The metric on R_t (``cycles.reference_texts``) against D0, without its mode (a real sample's is noise)."""
        metrics = compute_metrics(reference_texts(self.cfg, t, size), real_texts=self.d0_texts)
        del metrics["top_samples"]
        return metrics

    def next_dataset(self, t: int) -> NextDataset:
        """D_t from D0, D_{t-1}, S_{t-1} and, when curation needs more samples, M_{t-1}."""
        prev = gen_dir(self.run_dir, t - 1)
        current = load_stage(prev / TRAIN_DATA)
        drawn = load_stage(prev / SAMPLES)
        # the model's score of each sample; S_t saved before the sampler returned log-probabilities has none
        scores = _per_token(drawn["logprob"], drawn["num_tokens"]) if "logprob" in drawn.column_names else None
        pool = load_stage(prev / POOL) if (prev / POOL).exists() else self.d0
        model = None

        def sample_more(k: int, round_: int) -> tuple[list[str], list[float]]:
            nonlocal model
            if model is None:
                model = self.load_model(prev / MODEL)
            seed = seed_for(self.cfg.training.seed, "sample", t - 1, round=round_)
            more = sample_expressions(model, self.tokenizer, self.cfg.sampling, self.acc, seed=seed, num_samples=k)
            return more.texts, _per_token(more.logprobs, more.token_counts)

        return build_next_dataset(self.cfg, t, self.d0, current, drawn["text"], sample_more, pool=pool,
                                  heldout=set(self.heldout), scores=scores)

    def generation(self, t: int) -> dict | None:
        """Generation t, stage by stage; each stage that is already on disk is read instead of redone.

        Returns the ``metrics.json`` payload on the main process, None on the others.
        """
        cfg, acc, folder, start = self.cfg, self.acc, gen_dir(self.run_dir, t), time.time()
        main = acc.is_main_process

        # Data: D_t. D0 for t = 0, else built by the cycle from D_{t-1} and S_{t-1}. The pool and the
        # curation record are written before train_data, whose rename marks the stage complete.
        if self._missing_on_all_processes(folder / TRAIN_DATA):
            nxt = NextDataset(self.d0, None) if t == 0 else self.next_dataset(t)
            if main:
                if nxt.pool is not None:
                    write_atomically(folder / POOL, lambda tmp: nxt.pool.save_to_disk(str(tmp)))
                if nxt.curation is not None:
                    write_json(folder / CURATION, nxt.curation)
                write_atomically(folder / TRAIN_DATA, lambda tmp: nxt.dataset.save_to_disk(str(tmp)))
            acc.wait_for_everyone()
        data = load_stage(folder / TRAIN_DATA)
        curation = read_json(folder / CURATION) if (folder / CURATION).is_file() else None

        # Model: M_t, trained on D_t from fresh weights or from M_{t-1}'s (init_from).
        if self._missing_on_all_processes(folder / MODEL):
            seed = seed_for(cfg.training.seed, "train", t)
            torch.manual_seed(seed)
            if cfg.training.init_from == "previous" and t > 0:
                model = self.load_model(gen_dir(self.run_dir, t - 1) / MODEL)
            else:
                model = make_model(cfg.model, self.tokenizer)
            training = dataclasses.replace(cfg.training, max_steps=cfg.max_steps_for(len(data)))
            result = train_model(model, self.tokenizer, data, training, acc, seed=seed,
                                 step_offset=t * cfg.training.max_steps)
            if main:
                write_json(folder / TRAIN_HISTORY, result.history)
                write_atomically(folder / MODEL, partial(_save_model, model, self.tokenizer, result.to_json()))
            acc.wait_for_everyone()
            del model
        model = self.load_model(folder / MODEL)
        train = read_json(folder / MODEL / TRAIN_RESULT)

        # Samples: S_t, drawn from M_t by all processes together.
        if self._missing_on_all_processes(folder / SAMPLES):
            drawn = sample_expressions(model, self.tokenizer, cfg.sampling, acc,
                                       seed=seed_for(cfg.training.seed, "sample", t))
            if main:
                write_json(folder / SAMPLING, {"num_samples": len(drawn.texts),
                                               "num_truncated": sum(drawn.truncated), "seconds": drawn.seconds})
                dataset = samples_dataset(drawn, t)
                write_atomically(folder / SAMPLES, lambda tmp: dataset.save_to_disk(str(tmp)))
            acc.wait_for_everyone()
        samples = load_stage(folder / SAMPLES)
        sampling = read_json(folder / SAMPLING)

        # Likelihoods (all processes, like validation): H under M_t; S_t under M_0 and under M_t itself.
        batch = cfg.training.per_device_train_batch_size
        first = model if t == 0 else self.first_model()
        likelihoods = {
            "heldout_nll": mean_nll(model, self.tokenizer, self.heldout, acc, batch),
            "samples_nll_m0": mean_nll(first, self.tokenizer, samples["text"], acc, batch),
            "samples_nll": mean_nll(model, self.tokenizer, samples["text"], acc, batch),
        }
        del model, first

        # Metrics: correctness and diversity of S_t, novelty against D_t, drift from the real distribution (D0),
        # the same metric on a real sample R_t of S_t's size (the reference), the likelihoods; metrics.json
        # marks t complete.
        payload = None
        if main:
            metrics = compute_metrics(samples["text"], training_texts=data["text"], real_texts=self.d0_texts)
            payload = {
                "generation": t,
                "metrics": metrics,
                "reference": self.reference_metrics(t, len(samples)),
                "train": train,
                "sampling": sampling,
                "eval": likelihoods,
                "data": {"num_rows": len(data), "origin_counts": _origin_counts(data), "curation": curation},
            }
            write_json(folder / METRICS, payload)
            m = metrics
            self.print(f"gen {t:02d} | true {m['true_rate']:.3f} false {m['false_rate']:.3f} "
                       f"syntax {m['syntax_error_rate']:.3f} | diversity {m['diversity']:.4f} | "
                       f"unique {m['unique_rate']:.3f} | val_loss {train['best_val_loss']:.4f} | "
                       f"heldout_nll {fmt(likelihoods['heldout_nll'])} | "
                       f"rows {len(data)} | {time.time() - start:.1f}s")
            acc.log({f"generation/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, step=t)
        acc.wait_for_everyone()
        acc.free_memory()

        # Publish: generation t to the run's Hub (main process only).
        self.publish(t)
        return payload

    def publish(self, t: int) -> None:
        """Publish generation t (idempotent, so a resumed run re-checks finished ones); main process only."""
        if self.hub is not None:
            from scl_hf.hub.publish import publish_generation

            publish_generation(self.run_dir, t, self.cfg, self.hub)

    def report(self) -> None:
        """Refresh report.md and its figures from the run directory (main process, well under a second)."""
        if self.acc.is_main_process:
            from scl_hf.report import write_run_report

            write_run_report(self.run_dir)

    def run(self) -> Path:
        where = f", publishing to {self.hub.endpoint}" if self.hub is not None else ""
        cyc = self.cfg.cycle
        select = f", select {cyc.select} of {cyc.selection_pool}x" if cyc.select != "none" else ""
        self.print(f"{self.run_dir}: {cyc.cycle}, curation {cyc.curation}{select}, "
                   f"{self.cfg.loop.num_generations} generations on {self.acc.device}, "
                   f"{self.acc.num_processes} process(es) x {self.threads} CPU thread(s){where}")
        for t in range(self.cfg.loop.num_generations):
            problem = marker_problem(self.run_dir, t)
            if problem is None:
                self.print(f"gen {t:02d} | complete, skipped")
                self.publish(t)
            else:
                if problem != "missing":  # a damaged marker: the stages before it are whole, so measure again
                    self.print(f"warning: {gen_dir(self.run_dir, t) / METRICS} is {problem}: measuring generation "
                               f"{t} again from its saved stages")
                self.generation(t)
                self.report()  # after every generation, so a running experiment can be watched
            self.acc.wait_for_everyone()
        self.report()
        return self.run_dir


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """One progress bar (training) and one line per generation: the libraries' bars are off within, as before after."""
    import datasets
    import huggingface_hub.utils
    import transformers.utils.logging as tlog

    switches = [  # datasets' switch also flips huggingface_hub's: restored first, so the latter's own state wins
        (datasets.is_progress_bar_enabled, datasets.enable_progress_bars, datasets.disable_progress_bars),
        (tlog.is_progress_bar_enabled, tlog.enable_progress_bar, tlog.disable_progress_bar),
        (lambda: not huggingface_hub.utils.are_progress_bars_disabled(), huggingface_hub.utils.enable_progress_bars,
         huggingface_hub.utils.disable_progress_bars),
    ]
    was = [is_enabled() for is_enabled, _, _ in switches]
    for _, _, disable in switches:
        disable()
    try:
        yield
    finally:
        for enabled, (_, enable, disable) in zip(was, switches, strict=True):
            enable() if enabled else disable()


def _open_run(cfg: Config, accelerator: Accelerator) -> tuple[RunLock | None, object]:
    """On the main process: lock the run directory, then open the Hub. ``(lock, hub)`` there, ``(None, None)``
    elsewhere; an error of either is raised on every process, before any training."""
    from scl_hf.hub.target import open_hub

    lock, hub, message = None, None, [None]
    if accelerator.is_main_process:
        try:
            lock = RunLock(cfg.run_dir).acquire()
            hub = open_hub(cfg)
        except SclHfError as err:
            if lock is not None:
                lock.release()
            if accelerator.num_processes == 1:
                raise
            message = [str(err)]
    if accelerator.num_processes > 1:
        broadcast_object_list(message)
        if message[0] is not None:
            if hub is not None:
                hub.close()
            if lock is not None:
                lock.release()
            raise SclHfError(message[0])
    return lock, hub


def run_loop(cfg: Config, allow_config_change: bool = False) -> Path:
    """Run (or resume) the loop described by ``cfg``, publishing as its ``hub`` keys say; returns the run directory."""
    check_resume(cfg, allow_config_change)  # on every process, so that all of them stop together
    accelerator = make_accelerator(cfg.training, project_dir=str(cfg.run_dir))
    threads = set_cpu_threads(cfg.training, accelerator)
    with quiet_libraries():
        lock, hub = _open_run(cfg, accelerator)
        try:
            if accelerator.is_main_process:
                write_atomically(cfg.run_dir / CONFIG, lambda tmp: save_config(cfg, tmp))
            accelerator.wait_for_everyone()
            if cfg.training.report_to != "none":
                accelerator.init_trackers(cfg.loop.run_name, config=cfg.to_flat())
            return Loop(cfg, accelerator, hub, threads).run()
        finally:
            if hub is not None:
                hub.close()
            if lock is not None:
                lock.release()
            accelerator.end_training()
