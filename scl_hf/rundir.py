"""The run directory: where every generation's stages live, how they are named, written and found complete.

One run is one folder, ``<output_dir>/<run_name>``; everything a report, a resume or a publish needs
is read from it (nothing from the loop's memory)::

    runs/<run_name>/config.yaml                resolved config, written first
    runs/<run_name>/.lock                      held by the running loop (released when its process ends)
    runs/<run_name>/gen_07/train_data/         D_07: exactly what M_07 trained on (provenance columns)
    runs/<run_name>/gen_07/curation.json       how D_07 was built from S_06: kept, rejected, resampled (t >= 1)
    runs/<run_name>/gen_07/pool/               accumulate_subsample only: the pool D_08 is drawn from
    runs/<run_name>/gen_07/train_history.json  M_07's training curve: loss, learning rate, tokens/s, validation loss
    runs/<run_name>/gen_07/model/              save_pretrained output (model + tokenizer) and train_result.json
    runs/<run_name>/gen_07/sampling.json       how S_07 was drawn: counts, truncations, seconds
    runs/<run_name>/gen_07/samples/            S_07: text, label (syntax_error/false/true), depth, truncated,
                                               logprob and num_tokens (its log-probability under M_07 at T = 1
                                               and the tokens it sums over), generation, model_revision
    runs/<run_name>/gen_07/metrics.json        written last: generation 7 is complete (``marker_problem``)
    runs/<run_name>/report.md, *.png           refreshed after every generation (``scl_hf.report``)
    runs/hub/                                  the embedded Hub store of every run under runs/ (when publishing)

``SMALL_FILES`` are the ones a repository keeps of a run (``scl-hf sweep --export``): never models or datasets.

Every stage is written under a ``.tmp-`` name and renamed when whole (``write_atomically``), and a
stage's side files (``curation.json``, ``pool``, ``train_history.json``, ``sampling.json``) are written
before the folder whose rename marks it done, so a kill at any moment leaves only whole stages.

The folder of generation t is ``gen_07`` and its tag on a Hub (and in provenance columns) is ``gen-07``:
``gen_dir`` and ``tag`` are the only places these formats are written.

Every random choice of a run comes from ``seed_for`` (see there); nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scl_hf.errors import RunDirError

CONFIG = "config.yaml"
TRAIN_DATA = "train_data"
CURATION = "curation.json"
POOL = "pool"
TRAIN_HISTORY = "train_history.json"
MODEL = "model"
TRAIN_RESULT = "train_result.json"  # inside MODEL: the ``train`` block of metrics.json
SAMPLING = "sampling.json"
SAMPLES = "samples"
METRICS = "metrics.json"  # the completion marker
METRICS_KEYS = ("generation", "metrics", "train", "sampling", "data")  # what a whole marker holds
LOCK = ".lock"
REPORT = "report.md"
# what a repository keeps of a run (scl-hf sweep --export): configs, metrics, records, reports; never models or data
SMALL_FILES = (CONFIG, REPORT, "*.png", f"gen_*/{METRICS}", f"gen_*/{TRAIN_HISTORY}", f"gen_*/{CURATION}",
               f"gen_*/{SAMPLING}")
EMBEDDED_HUB = "hub"  # the embedded Hub store, next to the run directories of one output_dir

_GEN_DIR = re.compile(r"gen_(\d+)")
_TAG = re.compile(r"gen-(\d+)")


def gen_dir(run_dir: str | Path, generation: int) -> Path:
    """The folder of a generation: ``<run_dir>/gen_07``."""
    return Path(run_dir) / f"gen_{generation:02d}"


def tag(generation: int) -> str:
    """The tag of a generation on the Hub and in provenance columns: ``gen-07``."""
    return f"gen-{generation:02d}"


def generation_of_dir(name: str) -> int | None:
    """7 for ``gen_07`` (any number of digits), None for any other name."""
    m = _GEN_DIR.fullmatch(name)
    return int(m.group(1)) if m else None


def generation_of_tag(name: str) -> int | None:
    """7 for ``gen-07`` (any number of digits), None for any other name."""
    m = _TAG.fullmatch(name)
    return int(m.group(1)) if m else None


def marker_problem(run_dir: str | Path, generation: int) -> str | None:
    """Why ``gen_XX/metrics.json`` is not a whole completion marker ("missing", or what is wrong); None if it is.

    The one rule for "generation t is complete": the loop redoes a generation whose marker has a problem, the
    sweep counts it as not done, the reports skip it (naming the problem) and publishing refuses it.
    """
    path = gen_dir(run_dir, generation) / METRICS
    if not path.is_file():
        return "missing"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return f"unreadable ({err})"
    if not isinstance(payload, dict):
        return f"not a JSON object but {type(payload).__name__}"
    absent = [key for key in METRICS_KEYS if key not in payload]
    if absent:
        return f"lacks {', '.join(absent)}"
    if payload["generation"] != generation:
        return f"belongs to generation {payload['generation']!r}"
    if not isinstance(payload["metrics"], dict):
        return "has a 'metrics' block that is not an object"
    return None


def is_complete(run_dir: str | Path, generation: int) -> bool:
    """Whether generation ``generation`` wrote a whole completion marker, ``metrics.json``."""
    return marker_problem(run_dir, generation) is None


def generation_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(generation, folder)`` of every ``gen_XX`` folder, complete or not, in generation order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(g, p) for p in run_dir.iterdir() if p.is_dir() and (g := generation_of_dir(p.name)) is not None]
    return sorted(found)


def complete_generations(run_dir: str | Path) -> list[int]:
    """Generations whose ``metrics.json`` is whole, in order."""
    return [g for g, _ in generation_dirs(run_dir) if is_complete(run_dir, g)]


def embedded_hub_root(run_dir: str | Path, configured: str | None = None) -> Path:
    """The embedded Hub store a run publishes to: ``configured`` (``embedded_hub_root``), else ``<output_dir>/hub``.

    ``<output_dir>`` is the run directory's parent, so the answer follows a run folder that was moved.
    """
    return Path(configured) if configured else Path(run_dir).parent / EMBEDDED_HUB


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_atomically(final: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` for a temporary sibling of ``final`` (file or folder), then rename it to ``final``.

    A reader sees all of ``final`` or nothing; a leftover temporary from a killed write is removed first.
    """
    final = Path(final)
    tmp = final.with_name(f".tmp-{final.name}")
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove(tmp)
    write(tmp)
    if final.is_dir() and not final.is_symlink():  # os.replace cannot replace a non-empty folder
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_text(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, payload: object) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    write_text(path, json.dumps(payload, indent=2) + "\n")


def read_json(path: str | Path) -> object:
    """A JSON file's content; a RunDirError naming the file when it is missing or does not parse."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunDirError(f"cannot read {path}: {err}; delete it to have the loop write it again") from None


class RunLock:
    """An exclusive lock on a run directory for the life of one run (``fcntl.flock`` on ``<run_dir>/.lock``).

    The main process of a launch takes it; a second launch on the same folder fails at once, naming
    the holder's PID. The operating system releases it when the holding process ends, however it
    ends, so a lock left by a killed run never blocks its resume. (Where ``fcntl`` is missing, on
    Windows, there is no lock.)
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self._file = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")  # held open for the life of the run
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunDirError(f"{self.path.parent} is in use by another run (PID {holder}, lock {self.path}): "
                              "wait for it to finish or stop it, or use another run_name or output_dir") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


# Every random stream of a run, by stage. A new stage takes the next free number; numbers never change.
SEED_STAGES = {
    "real": 0,  # data_seed: D0 (generation 0)
    "fresh": 1,  # data_seed: the fresh real rows of D_t (generation t, the training set they join)
    "train": 2,  # seed: M_t's initial weights, validation split, batch order and dropout (generation t)
    "sample": 3,  # seed: S_t (generation t, round 0) and extra samples of M_t for curation (rounds 1, 2, ...)
    "draw": 4,  # seed: rows drawn from D0, D_{t-1} or the pool when D_t is built (generation t)
    "heldout": 5,  # data_seed: the held-out real set H (generation 0; drawn once, disjoint from D0)
    "reference": 6,  # data_seed: R_t, a real sample the size of S_t measured beside it (generation t)
    "verify": 7,  # seed: the imperfect verifier's wrong verdicts while D_t is built (generation t)
    "correct": 8,  # seed: the ties the correction of samples breaks while D_t is built (generation t)
    "select": 9,  # seed: the random subset `select: random` keeps of the pool while D_t is built (generation t)
    "data": 10,  # seed: the data_seed of a replicate whose recipe pins none (Config.real_data_seed; generation 0)
}


def seed_for(base_seed: int, stage: str, generation: int, round: int = 0) -> int:
    """The seed of one random stream of a run: ``(base_seed, stage, generation, round)`` through a SeedSequence.

    ``base_seed`` is the run's real-data seed (``Config.real_data_seed``) for the streams that make real data and
    ``seed`` for all others (``SEED_STAGES`` says which, and what each stream drives). SeedSequence mixes the four
    integers so that streams of different stages, generations or rounds are independent, and the same
    four always give the same seed: a resumed run redraws exactly what an uninterrupted one drew.
    The result is below 2**31, so it is valid for ``random``, numpy's legacy seeding (which Accelerate's
    ``set_seed`` calls, adding the process index) and torch.

    >>> seed_for(1337, "train", 0) == seed_for(1337, "train", 0) != seed_for(1337, "train", 1)
    True
    """
    if stage not in SEED_STAGES:
        raise ValueError(f"stage must be one of {tuple(SEED_STAGES)}, got {stage!r}")
    if base_seed < 0 or generation < 0 or round < 0:
        raise ValueError(f"base_seed, generation and round must be >= 0, got {base_seed}, {generation}, {round}")
    entropy = [base_seed, SEED_STAGES[stage], generation, round]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0] >> 1)
