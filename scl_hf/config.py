"""Typed configuration: one flat dataclass per consumer, YAML first, command line on top.

Every key is unique across the sections, so a YAML recipe is one flat mapping (grouped by comment
headers) and every key is also a ``--key value`` flag. A recipe may start with ``base: other.yaml``
(relative to itself) to inherit and override another one; that is how the experiment grids share
values. Unknown keys, abbreviated flags and impossible values are errors whose message names the key
and what is allowed. Write floats with a dot in YAML (``1.0e-3``): PyYAML reads ``1e-3`` as a string
(which is still accepted here, and converted).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from scl_hf.correction import DEFAULT_MAX_EDITS
from scl_hf.errors import SclHfError
from scl_hf.expressions import GeneratorConfig, num_true_expressions
from scl_hf.rundir import seed_for
from scl_hf.selection import SELECTIONS

CYCLES = ("full_synthetic", "balanced", "incremental", "expanding", "accumulate", "accumulate_subsample")
CURATIONS = ("none", "syntactic", "verified", "correct", "dedup", "quota")
SELECTS = ("none", *SELECTIONS)  # how a pool of curated samples is cut to the rows needed
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
INIT_FROM = ("scratch", "previous")
REPORT_TO = ("none", "tensorboard", "wandb")
MIN_TEMPERATURE = 1e-6  # 1e-40 made every probability NaN in sampling; 1e-6 already samples as good as greedily


class ConfigError(SclHfError):
    """A configuration key has an unknown name or an impossible value."""


# Roles of keys, as field metadata (``keys_with``):
RESUMABLE = {"resumable": True}  # may change when a run resumes: it alters no finished generation
REPLICATE = {"replicate": True}  # runs whose configs differ only in such keys are replicates of one experiment
RESUMABLE_REPLICATE = {**RESUMABLE, **REPLICATE}


def invalid(key: str, allowed: str, value: object) -> ConfigError:
    """The error for an impossible value: the key, what it must be and what it got (recipes, sweeps, figures)."""
    return ConfigError(f"{key} must be {allowed}, got {value!r}")


def _require(ok: bool, key: str, allowed: str, value: object) -> None:
    if not ok:
        raise invalid(key, allowed, value)


def _require_finite(section: object) -> None:
    """Every float of a section is finite: inf passes checks like ``> 0`` and nan fails them all, unexplained."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float):
            _require(math.isfinite(value), f.name, "a finite number", value)


# A Hub repo id: "name" or "namespace/name", each part 1 to 96 ASCII letters, digits, '-', '_' or '.', starting and
# ending with a letter, digit or '_', with no '--' or '..' and not ending in '.git' (huggingface_hub's
# validate_repo_id, but ASCII only: the Hub refuses other scripts that its \w admits; here to keep the import light)
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"(?:{_REPO_PART}/)?{_REPO_PART}")
REPO_ID_RULES = ("'name' or 'namespace/name', each of 1 to 96 letters, digits, '-', '_' or '.', not starting or "
                 "ending with '-' or '.', without '--' or '..', not ending in '.git'")


def is_repo_id(value: object) -> bool:
    """Whether ``value`` is a valid Hub repo id (``REPO_ID_RULES``)."""
    return (isinstance(value, str) and _REPO_ID.fullmatch(value) is not None and "--" not in value
            and ".." not in value and not value.endswith(".git"))


@dataclass
class ModelConfig:
    """GPT-2 shape. Defaults: the paper's (nanoGPT's small character model, about 10.75M parameters)."""

    n_layer: int = 6  # transformer blocks
    n_head: int = 6  # attention heads; must divide n_embd
    n_embd: int = 384  # model width
    n_positions: int = 256  # context length in characters; also the packed block length
    dropout: float = 0.2  # residual, embedding and attention dropout (nanoGPT's shakespeare-char value)

    def __post_init__(self) -> None:
        _require_finite(self)
        for key in ("n_layer", "n_head", "n_embd"):
            _require(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        _require(self.n_positions >= 2, "n_positions", "an integer >= 2", self.n_positions)
        _require(self.n_embd % self.n_head == 0, "n_embd", f"a multiple of n_head={self.n_head}", self.n_embd)
        _require(0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)", self.dropout)


@dataclass(frozen=True)
class DataConfig(GeneratorConfig):
    """The real dataset D0 and the generator that makes it (and fresh real data): the generator's keys, plus these."""

    dataset_size: int = 10_000  # n = |D0|; every cycle's formula is written in units of n
    heldout_size: int = 2_000  # H: real expressions no training set ever holds; each M_t's NLL on H (0: off)
    # D0, H, fresh real data and the reference samples. null (the default): derived from the replicate's `seed`
    # (Config.real_data_seed), so seeds replicate the whole experiment; an integer pins real data across seeds
    data_seed: int | None = field(default=None, metadata=REPLICATE)

    def __post_init__(self) -> None:
        try:
            super().__post_init__()  # the generator's own checks, which name the key
        except ValueError as err:
            raise ConfigError(str(err)) from None
        _require(self.dataset_size >= 1, "dataset_size", "an integer >= 1", self.dataset_size)
        _require(self.heldout_size >= 0, "heldout_size", "an integer >= 0 (0: no held-out set)", self.heldout_size)
        _require(self.data_seed is None or self.data_seed >= 0, "data_seed",
                 "null (derived from seed) or an integer >= 0", self.data_seed)
        capacity = num_true_expressions(self, limit=self.dataset_size)  # D0 is that many distinct True expressions
        _require(self.dataset_size <= capacity, "dataset_size",
                 f"at most {capacity}, the number of distinct True expressions the generator can make with depth "
                 f"{self.min_depth}..{self.max_depth} (raise max_depth)", self.dataset_size)
        both = self.dataset_size + self.heldout_size  # H is disjoint from D0
        room = num_true_expressions(self, limit=both)
        _require(both <= room, "heldout_size",
                 f"at most {room - self.dataset_size} (0 turns it off): D0 and the held-out set need "
                 f"dataset_size + heldout_size distinct True expressions and the generator can make {room} with depth "
                 f"{self.min_depth}..{self.max_depth}", self.heldout_size)


@dataclass
class TrainingConfig:
    """One generation's training run. Defaults: nanoGPT's shakespeare-char recipe, as in the paper."""

    init_from: str = "scratch"  # "scratch": a new model per generation (the paper); "previous": fine-tune M_{t-1}
    learning_rate: float = 1.0e-3  # peak AdamW learning rate
    min_learning_rate: float = 1.0e-4  # cosine floor (nanoGPT: learning_rate / 10)
    warmup_steps: int = 100  # linear warmup from 0
    max_steps: int = 5000  # optimizer steps; the cosine decays over all of them
    per_device_train_batch_size: int = 64  # blocks of n_positions tokens per process per micro-step
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.1  # on weight matrices only, not on biases, LayerNorms or position tables
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99  # nanoGPT's value for small-batch character models
    max_grad_norm: float = 1.0
    validation_fraction: float = 0.1  # share of D_t held out for validation and checkpoint selection
    eval_steps: int = 250  # validate (and maybe keep the weights) every this many optimizer steps
    # stop after this many validations in a row without a new best validation loss (null: train to max_steps)
    early_stopping_patience: int | None = None
    # true: max_steps is the budget for dataset_size rows, and a D_t of m rows trains max_steps x m / dataset_size
    # steps (Config.max_steps_for), so a growing cycle (expanding) sees its rows as often as D0's were seen
    scale_steps_with_data: bool = False
    logging_steps: int = field(default=50, metadata=RESUMABLE)
    mixed_precision: str = "auto"  # "auto": bf16 where the GPU supports it, full precision on CPU
    torch_compile: bool = False  # compile the training forward (once per process: later generations reuse it)
    # transformers' hub kernels for the run's own checkpoints: off, so that no run depends on the network or on a
    # kernel repository's current state (transformers >= 5.2x turns them on by default where `kernels` is installed)
    use_kernels: bool = False
    # CPU threads of each process (null: the cores this process may use, divided by the processes of the launch)
    torch_num_threads: int | None = field(default=None, metadata=RESUMABLE_REPLICATE)
    report_to: str = field(default="none", metadata=RESUMABLE_REPLICATE)  # Accelerate tracker, per step and generation
    seed: int = field(default=1337, metadata=REPLICATE)  # every stream but real data's (scl_hf.rundir.seed_for)

    def __post_init__(self) -> None:
        _require_finite(self)
        _require(self.init_from in INIT_FROM, "init_from", f"one of {INIT_FROM}", self.init_from)
        _require(self.learning_rate > 0.0, "learning_rate", "a number > 0", self.learning_rate)
        _require(0.0 <= self.min_learning_rate <= self.learning_rate, "min_learning_rate",
                 f"in [0, learning_rate={self.learning_rate}]", self.min_learning_rate)
        _require(self.warmup_steps >= 0, "warmup_steps", "an integer >= 0", self.warmup_steps)
        for key in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "eval_steps",
                    "logging_steps"):
            _require(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        _require(self.weight_decay >= 0.0, "weight_decay", "a number >= 0", self.weight_decay)
        for key in ("adam_beta1", "adam_beta2"):
            _require(0.0 <= getattr(self, key) < 1.0, key, "in [0, 1)", getattr(self, key))
        _require(self.max_grad_norm > 0.0, "max_grad_norm", "a number > 0", self.max_grad_norm)
        _require(0.0 < self.validation_fraction < 1.0, "validation_fraction", "in (0, 1)", self.validation_fraction)
        _require(self.mixed_precision in MIXED_PRECISION, "mixed_precision", f"one of {MIXED_PRECISION}",
                 self.mixed_precision)
        _require(self.report_to in REPORT_TO, "report_to", f"one of {REPORT_TO}", self.report_to)
        _require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        for key in ("early_stopping_patience", "torch_num_threads"):
            value = getattr(self, key)
            _require(value is None or value >= 1, key, "null or an integer >= 1", value)


@dataclass
class SamplingConfig:
    """How S_t is drawn from M_t: ``num_samples`` sequences started from ``<bos>``."""

    num_samples: int = 10_000  # samples per generation (the paper: 10,000)
    temperature: float = 0.8  # the paper's value
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    max_new_tokens: int | None = None  # length cap in characters; None: fill the context (n_positions - 1)
    per_device_sample_batch_size: int = 1000  # sequences decoded at once per process

    def __post_init__(self) -> None:
        _require_finite(self)
        _require(self.num_samples >= 1, "num_samples", "an integer >= 1", self.num_samples)
        _require(self.temperature > 0.0, "temperature", "a number > 0", self.temperature)
        _require(self.temperature >= MIN_TEMPERATURE, "temperature",
                 f"at least {MIN_TEMPERATURE} (a smaller one divides the logits past the float32 range: NaN "
                 "probabilities)", self.temperature)
        _require(self.top_k >= 0, "top_k", "an integer >= 0 (0: off)", self.top_k)
        _require(0.0 < self.top_p <= 1.0, "top_p", "in (0, 1] (1: off)", self.top_p)
        _require(self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens",
                 "null or an integer >= 1", self.max_new_tokens)
        _require(self.per_device_sample_batch_size >= 1, "per_device_sample_batch_size", "an integer >= 1",
                 self.per_device_sample_batch_size)


@dataclass
class CycleConfig:
    """How D_{t+1} is built from D0, D_t and S_t; formulas in ``scl_hf/cycles.py``."""

    cycle: str = "full_synthetic"
    synthetic_fraction: float = 0.5  # lambda of incremental: share of D_{t+1} that is new rows
    fresh_fraction: float = 0.0  # share of each generation's new rows that are fresh real expressions
    curation: str = "none"  # filters on samples, joined with '+', e.g. "verified+dedup"; "none" is the paper
    resample_budget: float = 4.0  # extra samples allowed per generation when curation leaves too few, x num_samples
    verifier_error: float = 0.0  # ε: chance the verifier of `verified`/`correct` is wrong on a sample (0.5: blind)
    correction_max_edits: int = DEFAULT_MAX_EDITS  # `correct`: drop a sample more token edits than this from True
    selection_pool: int = 1  # k: curate k x the samples the cycle needs, then keep those `select` picks
    select: str = "none"  # how the pool is cut: a name of SELECTIONS ("random": the null); needs a pool k >= 2

    def __post_init__(self) -> None:
        _require_finite(self)
        _require(self.cycle in CYCLES, "cycle", f"one of {CYCLES}", self.cycle)
        _require(0.0 <= self.synthetic_fraction <= 1.0, "synthetic_fraction", "in [0, 1]", self.synthetic_fraction)
        _require(0.0 <= self.fresh_fraction <= 1.0, "fresh_fraction", "in [0, 1]", self.fresh_fraction)
        _require(self.fresh_fraction == 0.0 or not self.cycle.startswith("accumulate"), "fresh_fraction",
                 f"0 with cycle {self.cycle!r} (it adds samples only)", self.fresh_fraction)
        parts = self.curation.split("+")
        _require(all(p in CURATIONS for p in parts) and ("none" not in parts or parts == ["none"]), "curation",
                 f"'none' or names from {CURATIONS[1:]} joined with '+'", self.curation)
        _require(self.resample_budget >= 0.0, "resample_budget", "a number >= 0", self.resample_budget)
        _require(0.0 <= self.verifier_error < 1.0, "verifier_error", "in [0, 1) (0: an exact verifier)",
                 self.verifier_error)
        _require(self.verifier_error == 0.0 or {"verified", "correct"} & set(parts), "verifier_error",
                 f"0 unless curation has a verifier step ('verified' or 'correct'; curation is {self.curation!r})",
                 self.verifier_error)
        _require(self.correction_max_edits >= 1, "correction_max_edits", "an integer >= 1",
                 self.correction_max_edits)
        _require(self.selection_pool >= 1, "selection_pool", "an integer >= 1 (1: no pool)", self.selection_pool)
        _require(self.select in SELECTS, "select", f"one of {SELECTS}", self.select)
        if self.select == "none":
            _require(self.selection_pool == 1, "select", f"one of {SELECTS[1:]} when selection_pool is "
                     f"{self.selection_pool} (it says how the pool is cut)", self.select)
            return
        _require(self.selection_pool >= 2, "selection_pool",
                 f"an integer >= 2 with select {self.select!r} (a pool of 1 leaves nothing to select)",
                 self.selection_pool)
        _require(not self.cycle.startswith("accumulate"), "select",
                 f"'none' with cycle {self.cycle!r} (it keeps every curated sample: there is no number to select)",
                 self.select)
        unscored = tuple(m for m in SELECTIONS if m != "likelihood")  # the selections that need no model score
        _require(self.select != "likelihood" or "correct" not in parts, "select",
                 f"one of {unscored} with curation {self.curation!r}: likelihood scores a sample by "
                 "the probability the model drew it with, which a corrected row does not have", self.select)

    @property
    def curation_steps(self) -> list[str]:
        return [] if self.curation == "none" else self.curation.split("+")

    def extra_samples_allowed(self, num_samples: int) -> float:
        """Samples a generation may draw beyond S_t's ``num_samples``: ``(k - 1) · num_samples + k ·
        resample_budget · num_samples`` with k = ``selection_pool`` (a pool of k needs k times the samples, and
        k times the allowance for rejections; k = 1: ``resample_budget · num_samples``)."""
        k = self.selection_pool
        return (k - 1) * num_samples + k * self.resample_budget * num_samples

    def new_rows(self, n: int) -> int | None:
        """k of ``new(k)``, the new rows of each generation (``scl_hf/cycles.py``); None: accumulate's kept samples."""
        if self.cycle.startswith("accumulate"):
            return None
        if self.cycle == "balanced":
            return n - n // 2
        if self.cycle == "incremental":
            return round(self.synthetic_fraction * n)
        return n  # full_synthetic, expanding

    def fresh_rows(self, n: int) -> int:
        """Fresh real expressions per generation: round(fresh_fraction * k) of the k new rows."""
        num_new = self.new_rows(n)
        return 0 if num_new is None else round(self.fresh_fraction * num_new)


@dataclass
class HubConfig:
    """Where each generation is published: the real Hub, or the embedded one (the default)."""

    # True: the real Hub (or HF_ENDPOINT), which needs a token with write access; False: the embedded Hub
    push_to_hub: bool = field(default=False, metadata=RESUMABLE_REPLICATE)
    publish: bool = field(default=True, metadata=RESUMABLE_REPLICATE)  # False: publish nowhere (the run dir has all)
    # None: "<your user>/<run_name>" on the real Hub, "scl-hf/<run_name>" on the embedded one
    hub_model_id: str | None = field(default=None, metadata=RESUMABLE_REPLICATE)
    # None: the model repo's name, in the datasets namespace
    hub_dataset_id: str | None = field(default=None, metadata=RESUMABLE_REPLICATE)
    hub_private_repo: bool = field(default=False, metadata=RESUMABLE_REPLICATE)
    # None: "<output_dir>/hub", shared by the runs of one output_dir
    embedded_hub_root: str | None = field(default=None, metadata=RESUMABLE_REPLICATE)

    def __post_init__(self) -> None:
        for key in ("hub_model_id", "hub_dataset_id"):  # checked here, not first at publishing after a generation
            value = getattr(self, key)
            _require(value is None or is_repo_id(value), key, f"null or a Hub repo id: {REPO_ID_RULES}", value)


@dataclass
class LoopConfig:
    """The generation loop and its run directory."""

    run_name: str = field(default="default", metadata=REPLICATE)
    # the run lives in <output_dir>/<run_name>; where it lives is not part of its identity: a moved run resumes
    output_dir: str = field(default="runs", metadata=RESUMABLE_REPLICATE)
    num_generations: int = field(default=50, metadata=RESUMABLE)  # generations 0 .. num_generations - 1

    def __post_init__(self) -> None:
        _require(self.num_generations >= 1, "num_generations", "an integer >= 1", self.num_generations)
        _require(bool(self.run_name) and "/" not in self.run_name and self.run_name not in (".", ".."),
                 "run_name", "a non-empty folder name without '/'", self.run_name)


SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "training": TrainingConfig,
    "sampling": SamplingConfig,
    "cycle": CycleConfig,
    "hub": HubConfig,
    "loop": LoopConfig,
}


@dataclass
class Config:
    """All sections of an experiment. Flat keys; ``cfg.training.learning_rate`` etc."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    cycle: CycleConfig = field(default_factory=CycleConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        cap = self.model.n_positions - 1
        _require(self.sampling.max_new_tokens is None or self.sampling.max_new_tokens <= cap, "max_new_tokens",
                 f"null or at most n_positions - 1 = {cap}", self.sampling.max_new_tokens)
        budget = self.cycle.extra_samples_allowed(self.sampling.num_samples)
        _require(math.isfinite(budget), "resample_budget",
                 f"small enough that resample_budget * num_samples (= {self.sampling.num_samples}) is finite",
                 self.cycle.resample_budget)
        self._check_fresh_capacity()

    def _real_rows_needed(self, n: int) -> int:
        """Distinct True expressions a run with dataset_size ``n`` certainly needs: D0, H and fresh real rows.

        Fresh rows never repeat D0 or D_t, and D_t holds generation t's fresh rows (with ``expanding``,
        every earlier generation's), so D0 and that many generations' fresh rows are all distinct.
        """
        fresh, gens = self.cycle.fresh_rows(n), self.loop.num_generations - 1  # generations 1.. draw fresh rows
        batches = gens if self.cycle.cycle == "expanding" else min(gens, 2)
        return n + self.data.heldout_size + batches * fresh

    def _check_fresh_capacity(self) -> None:
        n = self.data.dataset_size
        needed = self._real_rows_needed(n)
        if needed == n + self.data.heldout_size:  # no fresh rows: DataConfig checked that D0 and H fit
            return
        capacity = num_true_expressions(self.data, limit=needed)
        if capacity < needed:
            lo, hi = 0, n  # the largest dataset_size whose rows fit: _real_rows_needed grows with n
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if self._real_rows_needed(mid) <= capacity else (lo, mid - 1)
            earlier = "any earlier generation's" if self.cycle.cycle == "expanding" else "the previous generation's"
            bounds = f"{self.data.min_depth}..{self.data.max_depth}"
            _require(False, "dataset_size",
                     f"at most {lo} with cycle={self.cycle.cycle!r}, fresh_fraction={self.cycle.fresh_fraction} and "
                     f"num_generations={self.loop.num_generations}: D0, the held-out set (heldout_size="
                     f"{self.data.heldout_size}) and the fresh real rows, which never repeat them or {earlier} "
                     f"fresh rows, need {needed} distinct True expressions, and the generator "
                     f"can make {capacity} with depth {bounds} (raise max_depth)", n)

    @property
    def real_data_seed(self) -> int:
        """The base seed of the real-data streams (D0, H, fresh rows, R_t): ``data_seed`` where a recipe pins it,
        else ``seed_for(seed, "data", 0)``, so that each replicate draws its own D0 and held-out set."""
        if self.data.data_seed is not None:
            return self.data.data_seed
        return seed_for(self.training.seed, "data", 0)

    def max_steps_for(self, rows: int) -> int:
        """Optimizer steps of a generation whose training set has ``rows`` rows: ``max_steps``, or with
        ``scale_steps_with_data`` ``round(max_steps * rows / dataset_size)`` (at least 1)."""
        if not self.training.scale_steps_with_data:
            return self.training.max_steps
        return max(1, round(self.training.max_steps * rows / self.data.dataset_size))

    def to_flat(self) -> dict:
        return {k: v for section in SECTIONS for k, v in dataclasses.asdict(getattr(self, section)).items()}

    @property
    def run_dir(self) -> Path:
        return Path(self.loop.output_dir) / self.loop.run_name

    def hash(self) -> str:
        """Short sha256 of the resolved values: names the configuration in published metadata."""
        return hashlib.sha256(json.dumps(self.to_flat(), sort_keys=True).encode()).hexdigest()[:12]


# key -> (section, type hint), e.g. "learning_rate" -> ("training", float)
KEYS: dict[str, tuple[str, object]] = {
    f.name: (section, typing.get_type_hints(cls)[f.name])
    for section, cls in SECTIONS.items()
    for f in dataclasses.fields(cls)
}


def keys_with(role: str) -> frozenset[str]:
    """Keys whose field metadata sets ``role`` (``"resumable"`` or ``"replicate"``)."""
    return frozenset(f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls) if f.metadata.get(role))


RESUMABLE_KEYS = keys_with("resumable")
REPLICATE_KEYS = keys_with("replicate")


def unknown_key(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, KEYS, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown key {key!r} in {where}{hint} allowed keys: {', '.join(KEYS)}")


def _convert(key: str, value: object) -> object:
    """Coerce a YAML or command-line value to the key's type, or raise a ConfigError naming the key."""
    hint = KEYS[key][1]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("null", "none")):
        if optional:
            return None
        raise ConfigError(f"{key} must be a {base.__name__}, got null")
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if base is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
    if base is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
        except OverflowError:  # an integer beyond the floats, e.g. 10**400 in YAML
            raise ConfigError(f"{key} must be a finite number, got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def read_mapping(path: Path, what: str = "config file") -> dict:
    """The YAML mapping of ``path`` (an empty file: ``{}``), or a ConfigError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of key: value, got {type(raw).__name__}")
    return raw


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Flat key -> value mapping of a recipe, following ``base:`` links (the file wins over its base)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"base: {path} includes itself")
    raw = read_mapping(path)
    values = {}
    if "base" in raw:
        values = read_yaml(path.parent / str(raw.pop("base")), _seen + (path,))
    for key, value in raw.items():
        if key not in KEYS:
            raise unknown_key(str(key), str(path))
        values[key] = value
    return values


def build_config(values: dict) -> Config:
    """A validated Config from a flat mapping (unknown keys are errors)."""
    sections: dict[str, dict] = {name: {} for name in SECTIONS}
    for key, value in values.items():
        if key not in KEYS:
            raise unknown_key(key, "the configuration")
        sections[KEYS[key][0]][key] = _convert(key, value)
    return Config(**{name: cls(**sections[name]) for name, cls in SECTIONS.items()})


def add_section_arguments(parser: argparse.ArgumentParser, section: str, aliases: dict[str, str] | None = None,
                          defaults: dict[str, object] | None = None) -> None:
    """One ``--key value`` flag per key of ``section``; ``aliases``: key -> extra flag.

    A key not given stays unset in the namespace (``section_from_args`` then takes the dataclass
    default), unless ``defaults`` gives the command its own default for it.
    """
    group = parser.add_argument_group(section)
    aliases, defaults = aliases or {}, defaults or {}
    for f in dataclasses.fields(SECTIONS[section]):
        flags = [f"--{f.name}"] + ([aliases[f.name]] if f.name in aliases else [])
        is_bool = KEYS[f.name][1] is bool
        group.add_argument(*flags, dest=f.name, default=defaults.get(f.name, argparse.SUPPRESS),
                           metavar=f.name.upper(), nargs="?" if is_bool else None, const="true" if is_bool else None,
                           help=f"(default: {defaults.get(f.name, f.default)!r})")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` plus one ``--key value`` flag per configuration key (defaults left unset)."""
    parser.add_argument("--config", help="YAML recipe; flags given here override its values")
    for section in SECTIONS:
        add_section_arguments(parser, section)


def section_from_args(args: argparse.Namespace, section: str):
    """The ``section`` dataclass from the flags of ``add_section_arguments`` that were given (the rest: defaults)."""
    cls = SECTIONS[section]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _convert(k, v) for k, v in vars(args).items() if k in names})


def config_from_args(args: argparse.Namespace) -> Config:
    """YAML values from ``args.config``, overridden by every flag given on the command line."""
    values = read_yaml(args.config) if getattr(args, "config", None) else {}
    values.update({k: v for k, v in vars(args).items() if k in KEYS})
    return build_config(values)


def parse_config(argv: list[str] | None = None) -> Config:
    """Parse ``--config`` and ``--key value`` flags; abbreviated or unknown flags are errors."""
    parser = argparse.ArgumentParser(allow_abbrev=False, description="scl_hf experiment configuration")
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as flat YAML with one comment header per section."""
    chunks = []
    for section in SECTIONS:
        body = yaml.safe_dump(dataclasses.asdict(getattr(cfg, section)), sort_keys=False)
        chunks.append(f"# --- {section} ---\n{body}")
    Path(path).write_text("\n".join(chunks), encoding="utf-8")


def load_config(path: str | Path) -> Config:
    """Read a recipe or a saved resolved config."""
    return build_config(read_yaml(path))


def diff_configs(old: Config, new: Config) -> list[tuple[str, object, object]]:
    """``(key, old, new)`` for every key whose value differs."""
    a, b = old.to_flat(), new.to_flat()
    return [(k, a[k], b[k]) for k in a if a[k] != b[k]]
