"""Reading run directories into records: one run, groups of seeds, intervals, the lists of measures.

A run directory (layout and completion rule: ``scl_hf.rundir``) is read here and nowhere else among the
reports: ``load_run`` turns it into a ``Run`` (its config, its complete generations' ``metrics.json`` records,
their training histories, and what was skipped and why), ``group_runs`` gathers runs that differ only in
``scl_hf.config.REPLICATE_KEYS`` into ``Group``s with mean curves and intervals over their seeds, and the
measure lists (``OVERLAYS``, ``DISTRIBUTION_MEASURES``, ``DIVERSITY_MEASURES``) say which numbers there are.
``scl_hf.report`` and ``scl_hf.figures`` draw from these records; neither opens a run directory itself.

Only the loop's own rule says when a generation is complete (``rundir.marker_problem``): a ``metrics.json``
that is missing, unreadable, not an object, lacking a block or naming another generation is skipped here, with
the reason, exactly as the loop redoes it, the sweep counts it as not done and publishing refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scl_hf.config import REPLICATE_KEYS, Config, load_config
from scl_hf.diversity import COLLAPSE_THRESHOLD
from scl_hf.errors import RunDirError  # raised by load_run for a folder that is not a run directory
from scl_hf.rundir import CONFIG, METRICS, TRAIN_HISTORY, generation_dirs, marker_problem, read_json
from scl_hf.stats import Comparison, area_under_curve, generations_to_collapse, paired_difference, t_interval

COLLAPSE_SHARE = 0.1  # the endpoint "generations to collapse": the distinct share (unique_rate) first below this


@dataclass
class Run:
    """What a run directory says about itself: its config and its complete generations, in order."""

    path: Path
    config: Config
    generations: list[dict]  # parsed gen_XX/metrics.json, sorted by generation
    skipped: list[str] = field(default_factory=list)  # "gen_04: why it was skipped", one per skipped folder or file
    # generation -> its gen_XX/train_history.json records, for complete generations that have a valid one
    histories: dict[int, list[dict]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.loop.run_name

    def values(self, block: str, key: str) -> list:
        """``metrics.json[block][key]`` per complete generation (None where absent); a dotted ``block`` such as
        ``data.curation`` reads a nested one."""
        out = []
        for g in self.generations:
            for name in block.split("."):
                g = g.get(name) or {}
            out.append(g.get(key))
        return out

    @property
    def generation_numbers(self) -> list[int]:
        return [g["generation"] for g in self.generations]


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_history(records: object) -> list[dict]:
    """``records`` if it is a training history as the loop writes it, else a ``ValueError`` saying why.

    A history is a list of records in step order, each ``{"step": int, "loss": float, "lr": float,
    "tokens_per_second": float}`` (a training-loss window) or ``{"step": int, "val_loss": float}`` (a
    validation); only ``step`` and the loss are required here. NaN losses are allowed (drawn as gaps).
    """
    if not isinstance(records, list):
        raise ValueError(f"not a list of step records but a {type(records).__name__}")
    last = None
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not isinstance(r.get("step"), int) or isinstance(r.get("step"), bool):
            raise ValueError(f"record {i} has no integer 'step'")
        if not any(is_number(r.get(k)) for k in ("loss", "val_loss")):
            raise ValueError(f"record {i} (step {r['step']}) has neither a 'loss' nor a 'val_loss' number")
        if last is not None and r["step"] < last:
            raise ValueError(f"record {i} (step {r['step']}) comes after step {last}: not in step order")
        last = r["step"]
    return records


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory: ``config.yaml`` (required), every complete ``gen_XX/metrics.json`` and, for
    those generations, ``gen_XX/train_history.json`` where it exists."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path} is not a run directory: {'not a folder' if path.exists() else 'it does not exist'}")
    if not (path / CONFIG).is_file():
        raise RunDirError(f"{path} is not a run directory: it has no {CONFIG} (the loop writes it first)")
    try:
        config = load_config(path / CONFIG)
    except ValueError as err:
        raise RunDirError(f"{path} is not a run directory: {CONFIG} is not a valid scl_hf config: {err}") from None
    generations, skipped, histories = [], [], {}
    for number, folder in generation_dirs(path):
        problem = marker_problem(path, number)  # the loop's rule: a report must not stop the loop, so say why
        if problem == "missing":
            skipped.append(f"{folder.name}: no {METRICS} yet (generation running or interrupted)")
            continue
        if problem is not None:
            skipped.append(f"{folder.name}: {METRICS} {problem}")
            continue
        generations.append(read_json(folder / METRICS))
        history_file = folder / TRAIN_HISTORY
        if history_file.is_file():  # runs from before the loop saved training curves have none
            try:
                history = check_history(read_json(history_file))
            except (OSError, ValueError) as err:
                skipped.append(f"{folder.name} loss curve: {TRAIN_HISTORY} unreadable ({err})")
                continue
            if history:
                histories[number] = history
    return Run(path=path, config=config, generations=generations, skipped=skipped, histories=histories)


# --- numbers -------------------------------------------------------------------------------------


def summarize(generations: list[int], diversity: list, true_rate: list, threshold: float = COLLAPSE_THRESHOLD) -> dict:
    """The collapse summary of one curve: diversity at the first and last generation, its relative decline,
    the first generation below ``threshold`` (None: never) and the true_rate peak (the first on ties)."""
    div = [(g, d) for g, d in zip(generations, diversity, strict=True) if d is not None]
    true = [(g, t) for g, t in zip(generations, true_rate, strict=True) if t is not None]
    first = div[0] if div else (None, None)
    last = div[-1] if div else (None, None)
    decline = (first[1] - last[1]) / first[1] if div and first[1] > 0 else None
    below = next((g for g, d in div if d < threshold), None)
    peak = max(true, key=lambda gt: gt[1]) if true else (None, None)  # max() keeps the first of equal values
    return {"first_generation": first[0], "diversity_first": first[1], "last_generation": last[0],
            "diversity_last": last[1], "relative_decline": decline, "below_threshold": below,
            "threshold": threshold, "true_rate_peak": peak[1], "true_rate_peak_generation": peak[0]}


def describe(cfg: Config) -> str:
    """``cycle`` with λ (synthetic_fraction, used by incremental only), the fresh share when any, curation, the
    verifier's error rate when it has one, and the selection with its pool when there is one."""
    parts = [cfg.cycle.cycle]
    if cfg.cycle.cycle == "incremental":
        parts.append(f"λ={cfg.cycle.synthetic_fraction:g}")
    if cfg.cycle.fresh_fraction > 0:  # every cycle but the accumulate ones draws fresh rows (scl_hf/cycles.py)
        parts.append(f"fresh={cfg.cycle.fresh_fraction:g}")
    parts.append(f"curation={cfg.cycle.curation}")
    if cfg.cycle.verifier_error > 0:
        parts.append(f"verifier_error={cfg.cycle.verifier_error:g}")
    if cfg.cycle.select != "none":
        parts.append(f"select={cfg.cycle.select} of {cfg.cycle.selection_pool}x")
    return ", ".join(parts)


def fmt(value, digits: int = 4) -> str:
    """A number for a table or a log line: ``digits`` decimals for a float, an integer as it is, "n/a" for none."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


# Measures with a reference value (the metric on R_t, a real sample of S_t's size): (key, what it is).
DISTRIBUTION_MEASURES = [
    ("jsd_depth", "JSD of depth vs D0"),
    ("jsd_length", "JSD of length vs D0"),
    ("jsd_not", "JSD of the count of not vs D0"),
    ("jsd_and", "JSD of the count of and vs D0"),
    ("jsd_or", "JSD of the count of or vs D0"),
    ("tail_coverage_depth", "tail coverage: deepest depth of D0"),
    ("tail_coverage_length", "tail coverage: longest length decile of D0"),
]
DIVERSITY_MEASURES = [
    ("diversity", "diversity (normalized edit distance)"),
    ("unique_rate", "unique samples (share)"),
    ("distinct_1", "distinct-1 (word tokens)"),
    ("distinct_2", "distinct-2"),
    ("distinct_3", "distinct-3"),
    ("distinct_4", "distinct-4"),
    ("compression_ratio", "compression ratio (gzip; higher: more repetitive)"),
    ("canonical_unique_rate", "distinct canonical expressions (share of parsable)"),
    ("shape_unique_rate", "distinct tree shapes (share of parsable)"),
]


def group_key(cfg: Config) -> tuple:
    """The config values that define an experiment: everything but ``REPLICATE_KEYS``."""
    return tuple((k, v) for k, v in cfg.to_flat().items() if k not in REPLICATE_KEYS)


@dataclass
class Group:
    """Runs of one experiment (configs equal up to ``REPLICATE_KEYS``) and their mean curves."""

    label: str
    runs: list[Run]
    generations: list[int]  # generations every run of the group completed
    curves: dict[str, dict[str, list[float]]]  # a key of OVERLAYS -> {"mean", "low", "high"}
    per_run: dict[str, list[list[float]]]  # a key of OVERLAYS -> one curve per run (on ``generations``)
    # a key of OVERLAYS -> one curve per run of its reference sample's value (NaN: none, e.g. likelihoods)
    reference: dict[str, list[list[float]]] = field(default_factory=dict)


# The curves a comparison overlays: (metrics.json block, key, y-axis label); a curve no run has is not drawn.
OVERLAYS = [
    ("metrics", "diversity", "diversity (mean normalized edit distance)"),
    ("metrics", "true_rate", "true_rate (share of samples)"),
    ("metrics", "syntax_error_rate", "syntax_error_rate (share of samples)"),
    ("metrics", "novelty_rate", "novelty_rate (share of samples not in the training data)"),
    ("eval", "heldout_nll", "held-out real data: NLL per token under M_t (nats)"),
    ("eval", "samples_nll_m0", "samples S_t: NLL per token under M_0 (nats)"),
    ("eval", "samples_nll", "samples S_t: NLL per token under M_t (nats)"),
    *[("metrics", key, what) for key, what in DISTRIBUTION_MEASURES],
    *[("metrics", key, what) for key, what in DIVERSITY_MEASURES if key not in ("diversity", "distinct_1",
                                                                             "distinct_3")],
    ("data.curation", "samples_per_kept_row", "samples drawn per kept row (the compute a kept row cost)"),
]


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs that differ only in ``REPLICATE_KEYS``, in order of first appearance, with the mean over seeds and
    its 95% t-interval per generation (NaN bounds for a group of one run: one seed says nothing of the spread)."""
    buckets: dict[tuple, list[Run]] = {}
    for run in runs:
        buckets.setdefault(group_key(run.config), []).append(run)
    described = [describe(members[0].config) for members in buckets.values()]
    # Two groups with the same cycle/λ/curation differ elsewhere: name those keys in the label.
    flats = [dict(key) for key in buckets]
    labels = []
    for i, label in enumerate(described):
        twins = [j for j, other in enumerate(described) if other == label and j != i]
        keys = [k for k in flats[i] if any(flats[j][k] != flats[i][k] for j in twins)]
        labels.append(", ".join([label] + [f"{k}={flats[i][k]}" for k in keys]))
    groups = []
    for label, members in zip(labels, buckets.values(), strict=True):
        common = sorted(set.intersection(*(set(r.generation_numbers) for r in members)))
        curves, per_run, reference = {}, {}, {}
        for block, key, _ in OVERLAYS:
            table = [_on_generations(r, block, key, common) for r in members]
            per_run[key] = table
            reference[key] = [_on_generations(r, "reference", key, common) for r in members]
            matrix = np.array(table, dtype=float).reshape(len(members), len(common))  # runs x generations
            columns = [col[~np.isnan(col)] for col in matrix.T]
            bands = [t_interval(col) if col.size else (np.nan, np.nan, np.nan) for col in columns]
            curves[key] = {"mean": [b[0] for b in bands], "low": [b[1] for b in bands], "high": [b[2] for b in bands]}
        groups.append(Group(label=label, runs=members, generations=common, curves=curves, per_run=per_run,
                            reference=reference))
    return groups


def values_at(group: Group, key: str, generation: int) -> dict[int, float]:
    """Seed -> the value of ``key`` at ``generation`` of each run of ``group`` that has a finite one."""
    if generation not in group.generations:
        return {}
    i = group.generations.index(generation)
    pairs = ((run.config.training.seed, curve[i]) for run, curve in zip(group.runs, group.per_run[key], strict=True))
    return {seed: v for seed, v in pairs if np.isfinite(v)}


def paired(values: dict[int, float], baseline: dict[int, float]) -> Comparison | None:
    """``values`` against ``baseline`` (seed -> value each) over the seeds both have, paired by seed (the same seed
    draws the same D0 and held-out set); None below two common seeds."""
    seeds = sorted(set(values) & set(baseline))
    if len(seeds) < 2:
        return None
    return paired_difference([values[s] for s in seeds], [baseline[s] for s in seeds])


@dataclass(frozen=True)
class Endpoints:
    """The endpoints of one run, fixed before the grid ran (``scl_hf.stats``)."""

    seed: int
    collapse: tuple[int, bool]  # (generation, observed): first generation whose unique_rate < COLLAPSE_SHARE, else
    # (the last generation, False): censored there
    diversity_auc: float  # mean level of the diversity curve over its generations (nan: fewer than two)
    final_heldout_nll: float  # at the last complete generation (nan: not measured)


def endpoints(run: Run) -> Endpoints:
    """The endpoints of ``run`` over its complete generations."""
    gens = run.generation_numbers
    unique = [np.nan if not is_number(v) else float(v) for v in run.values("metrics", "unique_rate")]
    diversity = [np.nan if not is_number(v) else float(v) for v in run.values("metrics", "diversity")]
    nll = run.values("eval", "heldout_nll")
    return Endpoints(seed=run.config.training.seed,
                     collapse=generations_to_collapse(gens, unique, COLLAPSE_SHARE),
                     diversity_auc=area_under_curve(gens, diversity) if len(gens) > 1 else np.nan,
                     final_heldout_nll=float(nll[-1]) if nll and is_number(nll[-1]) else np.nan)


def _on_generations(run: Run, block: str, key: str, generations: list[int]) -> list[float]:
    """``metrics.json[block][key]`` of ``run`` on ``generations`` (NaN where absent)."""
    by_gen = dict(zip(run.generation_numbers, run.values(block, key), strict=True))
    return [float(by_gen[g]) if is_number(by_gen[g]) else np.nan for g in generations]


def reference_values(groups: list[Group], key: str) -> dict[int, list[float]]:
    """Generation -> the finite values of the reference sample's ``key`` over every run of ``groups`` (in group
    and run order); empty when no run has one (likelihoods, older runs)."""
    by_gen: dict[int, list[float]] = {}
    for group in groups:
        for values in group.reference.get(key, []):
            for g, v in zip(group.generations, values, strict=True):
                if np.isfinite(v):
                    by_gen.setdefault(g, []).append(v)
    return by_gen


def reference_band(groups: list[Group], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(generations, low, high)``: per generation, the range of the reference sample's ``key`` over every run
    of ``groups`` that has one; None when none has (likelihoods, older runs)."""
    by_gen = reference_values(groups, key)
    if not by_gen:
        return None
    gens = sorted(by_gen)
    return (np.array(gens, dtype=float), np.array([min(by_gen[g]) for g in gens]),
            np.array([max(by_gen[g]) for g in gens]))
