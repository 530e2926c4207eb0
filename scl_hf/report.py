"""Reports from run directories: the paper's figures and tables, for one run or side by side for many.

Everything here is computed from the files a run directory holds (``config.yaml`` and each
``gen_XX/metrics.json``), never from the loop's memory, so a report can be rebuilt at any time, from
a copied folder, and while the run is still going: a generation folder without ``metrics.json`` is
running or was interrupted, and is skipped and named in the report.

One run (``write_run_report``): ``report.md`` and PNG figures next to ``config.yaml``:
  correctness.png  stacked bars of syntax_error / false / true per generation (the paper's Figure 3 kind)
  diversity.png    diversity per generation (with a 95% band when it was estimated from sampled pairs)
  unique.png       unique samples per generation
  curation.png     what curation kept and rejected per generation (only when the run curates)
The loop calls it after every generation, so it must stay cheap: a few small JSON reads and four
figures (well under a second on a CPU).

Several runs (``write_comparison_report``): ``comparison.md`` and overlays of diversity and true_rate
per generation, one line per group. Runs whose configs differ only in seeds, names, output folder,
tracker or Hub settings (``IGNORED_KEYS``) form one group, drawn as the mean over its runs with a 95%
bootstrap interval band (deterministic: a fixed numpy seed), over the generations all of them completed.

Figures use matplotlib's object API with the Agg canvas (no pyplot, no global state, no display).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from scl_hf.config import SECTIONS, Config, HubConfig, load_config

DEFAULT_THRESHOLD = 0.1  # "diversity collapsed": below this mean normalized edit distance between samples
BOOTSTRAP_RESAMPLES = 2000  # resamples of the runs in a group for the 95% interval of the mean
BOOTSTRAP_SEED = 0  # fixed, so the same runs always give the same band
# Keys that do not change what a run measures: runs differing only in these are seeds of one experiment.
IGNORED_KEYS = frozenset(
    {"data_seed", "seed", "run_name", "output_dir", "report_to"} | {f.name for f in dataclasses.fields(HubConfig)}
)
LABEL_COLORS = {"syntax_error": "#d62728", "false": "#ff7f0e", "true": "#2ca02c"}  # red, orange, green
REJECT_COLORS = {"syntax_error": "#d62728", "false": "#ff7f0e", "duplicate": "#9467bd", "quota": "#8c564b"}
_GEN_DIR = re.compile(r"^gen_(\d+)$")


class RunDirError(ValueError):
    """A folder given as a run directory is not one (missing, not a folder, no valid config.yaml)."""


@dataclass
class Run:
    """What a run directory says about itself: its config and its complete generations, in order."""

    path: Path
    config: Config
    generations: list[dict]  # parsed gen_XX/metrics.json, sorted by generation
    skipped: list[str] = field(default_factory=list)  # "gen_04: why it was skipped", one per skipped folder

    @property
    def name(self) -> str:
        return self.config.loop.run_name

    def values(self, block: str, key: str) -> list:
        """``metrics.json[block][key]`` per complete generation (None where absent)."""
        return [(g.get(block) or {}).get(key) for g in self.generations]

    @property
    def generation_numbers(self) -> list[int]:
        return [g["generation"] for g in self.generations]


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory: ``config.yaml`` (required) and every complete ``gen_XX/metrics.json``."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path} is not a run directory: {'not a folder' if path.exists() else 'it does not exist'}")
    if not (path / "config.yaml").is_file():
        raise RunDirError(f"{path} is not a run directory: it has no config.yaml (the loop writes it first)")
    try:
        config = load_config(path / "config.yaml")
    except ValueError as err:
        raise RunDirError(f"{path} is not a run directory: config.yaml is not a valid scl_hf config: {err}") from None
    generations, skipped = [], []
    folders = sorted((int(m.group(1)), p) for p in path.iterdir() if p.is_dir() and (m := _GEN_DIR.match(p.name)))
    for number, folder in folders:
        metrics_file = folder / "metrics.json"
        if not metrics_file.is_file():
            skipped.append(f"{folder.name}: no metrics.json yet (generation running or interrupted)")
            continue
        try:
            record = json.loads(metrics_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # a report must not stop the loop: say what is wrong instead
            skipped.append(f"{folder.name}: metrics.json unreadable ({err})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
            skipped.append(f"{folder.name}: metrics.json has no 'metrics' block")
            continue
        generations.append({**record, "generation": number})  # the folder name is the generation
    return Run(path=path, config=config, generations=generations, skipped=skipped)


# --- numbers -------------------------------------------------------------------------------------


def bootstrap_interval(values, *, confidence: float = 0.95, num_resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per run); a point for one run."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)  # a fresh generator per call: the band never depends on call order
    means = values[rng.integers(0, values.size, size=(num_resamples, values.size))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def summarize(generations: list[int], diversity: list, true_rate: list, threshold: float = DEFAULT_THRESHOLD) -> dict:
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


# --- labels and markdown -------------------------------------------------------------------------


def describe(cfg: Config) -> str:
    """``cycle`` with λ (synthetic_fraction, used by incremental only), the fresh share when any, curation."""
    parts = [cfg.cycle.cycle]
    if cfg.cycle.cycle == "incremental":
        parts.append(f"λ={cfg.cycle.synthetic_fraction:g}")
    if cfg.cycle.fresh_fraction > 0:  # every cycle but the accumulate ones draws fresh rows (scl_hf/cycles.py)
        parts.append(f"fresh={cfg.cycle.fresh_fraction:g}")
    parts.append(f"curation={cfg.cycle.curation}")
    return ", ".join(parts)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _summary_cells(s: dict) -> list[str]:
    decline = "n/a" if s["relative_decline"] is None else f"{100.0 * s['relative_decline']:.1f}%"
    below = "never" if s["below_threshold"] is None else str(s["below_threshold"])
    peak = "n/a"
    if s["true_rate_peak"] is not None:
        peak = f"{s['true_rate_peak']:.4f} (gen {s['true_rate_peak_generation']})"
    return [_fmt(s["diversity_first"]), f"{_fmt(s['diversity_last'])} (gen {s['last_generation']})", decline, below,
            peak]


def _summary_header(threshold: float) -> list[str]:
    return ["diversity at gen 0", "diversity at last gen", "relative decline", f"first gen below {threshold:g}",
            "true_rate peak"]


def _config_yaml(cfg: Config) -> str:
    return "\n".join(f"# --- {s} ---\n" + yaml.safe_dump(dataclasses.asdict(getattr(cfg, s)), sort_keys=False)
                     for s in SECTIONS)


# --- figures -------------------------------------------------------------------------------------


def _figure(title: str, xlabel: str, ylabel: str, size=(8.0, 4.5)) -> tuple[Figure, object]:
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # PNG rendering without pyplot or a display
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def _save(fig: Figure, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)  # a viewer never sees a half-written figure


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a viewer (or a second writer) never sees a half-written report


def _plot_correctness(run: Run, path: Path, title: str) -> None:
    fig, ax = _figure(f"Correctness of samples per generation\n{title}", "generation", "share of samples")
    gens = np.array(run.generation_numbers)
    bottom = np.zeros(len(gens))
    for label in ("syntax_error", "false", "true"):  # errors at the bottom, as in the paper's Figure 3
        share = np.array([v or 0.0 for v in run.values("metrics", f"{label}_rate")])
        ax.bar(gens, share, bottom=bottom, color=LABEL_COLORS[label], label=label.replace("_", " "), width=0.8)
        bottom += share
    ax.set_ylim(0.0, 1.0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="label")
    _save(fig, path)


def _plot_diversity(run: Run, path: Path, title: str, threshold: float) -> None:
    fig, ax = _figure(f"Diversity of samples per generation\n{title}", "generation",
                      "diversity (mean normalized edit distance)")
    gens = np.array(run.generation_numbers, dtype=float)
    div = np.array([np.nan if v is None else v for v in run.values("metrics", "diversity")], dtype=float)
    ax.plot(gens, div, marker="o", color="#1f77b4", label="diversity")
    stderr = run.values("metrics", "diversity_stderr")
    if any(s is not None for s in stderr):  # estimated from sampled pairs: show its 95% interval
        se = np.array([np.nan if s is None else s for s in stderr], dtype=float)
        ax.fill_between(gens, div - 1.96 * se, div + 1.96 * se, color="#1f77b4", alpha=0.2,
                        label="95% interval (sampled pairs)")
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_ylim(0.0, max(1.05 * np.nanmax(div), 1.2 * threshold) if np.isfinite(div).any() else 1.0)
    ax.legend(loc="best")
    _save(fig, path)


def _plot_unique(run: Run, path: Path, title: str) -> None:
    fig, ax = _figure(f"Unique samples per generation\n{title}", "generation", "samples")
    gens = np.array(run.generation_numbers)
    ax.bar(gens, [v or 0 for v in run.values("metrics", "num_unique")], color="#1f77b4", width=0.8,
           label="unique samples")
    ax.plot(gens, [v or 0 for v in run.values("metrics", "num_samples")], color="black", linestyle="--", marker="_",
            label="samples drawn")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def _plot_curation(rows: list[tuple[int, dict]], path: Path, title: str) -> None:
    fig, ax = _figure(f"Curation of the previous generation's samples\n{title}",
                      "generation (whose training set was built)", "samples")
    gens = np.array([g for g, _ in rows])
    bottom = np.array([float(c.get("kept") or 0) for _, c in rows])
    ax.bar(gens, bottom, color="#2ca02c", width=0.8, label="kept")
    for reason, color in REJECT_COLORS.items():
        count = np.array([float((c.get("rejected") or {}).get(reason) or 0) for _, c in rows])
        if count.any():
            ax.bar(gens, count, bottom=bottom, color=color, width=0.8, label=f"rejected: {reason.replace('_', ' ')}")
            bottom += count
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


# --- one run -------------------------------------------------------------------------------------


def _generation_rows(run: Run) -> list[list[str]]:
    rows = []
    for g in run.generations:
        m, t, s = g["metrics"], g.get("train") or {}, g.get("sampling") or {}
        rows.append([str(g["generation"]), _fmt(m.get("num_samples")), _fmt(m.get("true_rate")),
                     _fmt(m.get("false_rate")), _fmt(m.get("syntax_error_rate")), _fmt(m.get("diversity")),
                     _fmt(m.get("num_unique")), _fmt(m.get("unique_rate")), _fmt(m.get("novelty_rate")),
                     _fmt(m.get("mean_length"), 2), _fmt(m.get("max_length")), _fmt(m.get("mean_depth"), 2),
                     _fmt(s.get("num_truncated")), _fmt(t.get("best_val_loss"))])
    return rows


GENERATION_HEADER = ["generation", "samples", "true_rate", "false_rate", "syntax_error_rate", "diversity",
                     "num_unique", "unique_rate", "novelty_rate", "mean_length", "max_length", "mean_depth",
                     "truncated", "best_val_loss"]
TRAINING_HEADER = ["generation", "train rows", "real", "synthetic", "fresh", "steps", "best_step",
                   "final_train_loss", "train_tokens", "train s", "sampling s"]
CURATION_HEADER = ["generation", "steps", "input", "kept", "rejected: syntax_error", "rejected: false",
                   "rejected: duplicate", "rejected: quota", "extra_samples", "shortfall"]


def _training_rows(run: Run) -> list[list[str]]:
    rows = []
    for g in run.generations:
        t, s, d = g.get("train") or {}, g.get("sampling") or {}, g.get("data") or {}
        origin = d.get("origin_counts") or {}
        rows.append([str(g["generation"]), _fmt(d.get("num_rows")), _fmt(origin.get("real")),
                     _fmt(origin.get("synthetic")), _fmt(origin.get("fresh")), _fmt(t.get("steps")),
                     _fmt(t.get("best_step")), _fmt(t.get("final_train_loss")), _fmt(t.get("train_tokens")),
                     _fmt(t.get("seconds"), 1), _fmt(s.get("seconds"), 1)])
    return rows


def _curation(run: Run) -> list[tuple[int, dict]]:
    """``(generation, data.curation)`` for every generation whose training set was curated."""
    pairs = [(g["generation"], (g.get("data") or {}).get("curation")) for g in run.generations]
    return [(gen, c) for gen, c in pairs if isinstance(c, dict)]


def write_run_report(run_dir: str | Path, *, threshold: float = DEFAULT_THRESHOLD) -> Path:
    """Write ``report.md`` and its PNG figures into ``run_dir``; returns the path of ``report.md``.

    Works on incomplete and running runs (complete generations only; the others are named). Raises
    ``RunDirError`` (a ``ValueError``) for a folder that is not a run directory.
    """
    run = load_run(run_dir)
    cfg = run.config
    title = f"{run.name}: {describe(cfg)}"
    done, total = len(run.generations), cfg.loop.num_generations
    lines = [f"# Run report: {run.name}", "", f"**{describe(cfg)}**", ""]
    status = "complete" if done >= total else "incomplete (running or interrupted)"
    lines.append(f"Generations with metrics: {done} of {total}, {status}.")
    lines += [f"- skipped {why}" for why in run.skipped]
    lines.append("")
    if not run.generations:
        lines += ["No generation is complete yet: no figures and no tables.", ""]
    else:
        summary = summarize(run.generation_numbers, run.values("metrics", "diversity"),
                            run.values("metrics", "true_rate"), threshold)
        lines += ["## Summary", "", _table(_summary_header(threshold), [_summary_cells(summary)]), ""]
        _plot_correctness(run, run.path / "correctness.png", title)
        _plot_diversity(run, run.path / "diversity.png", title, threshold)
        _plot_unique(run, run.path / "unique.png", title)
        lines += ["## Figures", "", "![correctness per generation](correctness.png)", "",
                  "![diversity per generation](diversity.png)", "", "![unique samples per generation](unique.png)", ""]
        curation = _curation(run)
        if curation:
            _plot_curation(curation, run.path / "curation.png", title)
            lines += ["![curation per generation](curation.png)", ""]
        lines += ["## Per generation", "", "Rates are shares of the generation's samples; lengths are in word tokens.",
                  "", _table(GENERATION_HEADER, _generation_rows(run)), "", "## Training data and cost", "",
                  _table(TRAINING_HEADER, _training_rows(run)), ""]
        if curation:
            rows = [[str(g), "+".join(c.get("steps") or []), _fmt(c.get("input")), _fmt(c.get("kept"))]
                    + [_fmt((c.get("rejected") or {}).get(r)) for r in REJECT_COLORS]
                    + [_fmt(c.get("extra_samples")), _fmt(c.get("shortfall"))] for g, c in curation]
            lines += ["## Curation", "", "How each generation's training set was built from the previous "
                      "generation's samples.", "", _table(CURATION_HEADER, rows), ""]
    lines += ["## Config", "", "```yaml", _config_yaml(cfg).rstrip(), "```", ""]
    _write_text(run.path / "report.md", "\n".join(lines))
    return run.path / "report.md"


# --- several runs --------------------------------------------------------------------------------


def group_key(cfg: Config) -> tuple:
    """The config values that define an experiment: everything but ``IGNORED_KEYS``."""
    return tuple((k, v) for k, v in cfg.to_flat().items() if k not in IGNORED_KEYS)


@dataclass
class Group:
    """Runs of one experiment (configs equal up to ``IGNORED_KEYS``) and their mean curves."""

    label: str
    runs: list[Run]
    generations: list[int]  # generations every run of the group completed
    curves: dict[str, dict[str, list[float]]]  # "diversity"/"true_rate" -> {"mean", "low", "high"}
    per_run: dict[str, list[list[float]]]  # "diversity"/"true_rate" -> one curve per run (on ``generations``)


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs that differ only in ``IGNORED_KEYS``, in order of first appearance, with mean and 95% band."""
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
        curves, per_run = {}, {}
        for key in ("diversity", "true_rate"):
            table = []
            for r in members:
                by_gen = dict(zip(r.generation_numbers, r.values("metrics", key), strict=True))
                table.append([np.nan if by_gen[g] is None else float(by_gen[g]) for g in common])
            per_run[key] = table
            matrix = np.array(table, dtype=float).reshape(len(members), len(common))  # runs x generations
            columns = [col[~np.isnan(col)] for col in matrix.T]
            bands = [bootstrap_interval(col) if col.size else (np.nan, np.nan) for col in columns]
            curves[key] = {"mean": [float(col.mean()) if col.size else np.nan for col in columns],
                           "low": [b[0] for b in bands], "high": [b[1] for b in bands]}
        groups.append(Group(label=label, runs=members, generations=common, curves=curves, per_run=per_run))
    return groups


def _plot_overlay(groups: list[Group], key: str, path: Path, ylabel: str, threshold: float | None) -> None:
    fig, ax = _figure(f"{key} per generation: mean over seeds, 95% bootstrap interval", "generation", ylabel,
                      size=(8.0, 6.0))
    palette = matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"]
    colors = [palette(i % palette.N) for i in range(len(groups))]
    top = 0.0
    for group, color in zip(groups, colors, strict=True):
        gens = np.array(group.generations, dtype=float)
        curve = group.curves[key]
        n = len(group.runs)
        ax.plot(gens, curve["mean"], color=color, marker="o", markersize=3,
                label=f"{group.label} ({n} run{'s' if n > 1 else ''})")
        if n > 1:
            for values in group.per_run[key]:  # the seeds themselves, faint, under the band
                ax.plot(gens, values, color=color, alpha=0.25, linewidth=0.8)
            ax.fill_between(gens, curve["low"], curve["high"], color=color, alpha=0.2)
        finite = [v for values in group.per_run[key] for v in values if np.isfinite(v)]
        top = max([top, *finite])
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_ylim(0.0, 1.0 if key == "true_rate" else max(1.05 * top, 1.2 * (threshold or 0.0), 0.05))
    fig.legend(loc="outside lower center", ncols=2 if len(groups) > 4 else 1, fontsize=8)  # below: long labels
    _save(fig, path)


def write_comparison_report(run_dirs: list[str | Path], output_dir: str | Path, *,
                            threshold: float = DEFAULT_THRESHOLD) -> Path:
    """Write ``comparison.md``, ``comparison_diversity.png`` and ``comparison_true_rate.png`` into ``output_dir``.

    Runs whose configs differ only in ``IGNORED_KEYS`` are one group (mean and 95% bootstrap band over
    the generations all of them completed). Returns the path of ``comparison.md``.
    """
    if not run_dirs:
        raise ValueError("write_comparison_report needs at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    lines = ["# Comparison of runs", "",
             "Runs whose configs differ only in " + ", ".join(sorted(IGNORED_KEYS)) + " are one group: its line is "
             f"the mean over its runs, the band a 95% bootstrap interval of that mean ({BOOTSTRAP_RESAMPLES} "
             f"resamples, numpy seed {BOOTSTRAP_SEED}), over the generations every run of the group completed.", ""]
    plotted = [g for g in groups if g.generations]
    if plotted:
        _plot_overlay(plotted, "diversity", out / "comparison_diversity.png",
                      "diversity (mean normalized edit distance)", threshold)
        _plot_overlay(plotted, "true_rate", out / "comparison_true_rate.png", "true_rate (share of samples)", None)
        lines += ["![diversity per generation](comparison_diversity.png)", "",
                  "![true_rate per generation](comparison_true_rate.png)", ""]
    rows = []
    for g in groups:
        s = summarize(g.generations, g.curves["diversity"]["mean"], g.curves["true_rate"]["mean"], threshold)
        span = f"{g.generations[0]}..{g.generations[-1]}" if g.generations else "none"
        cells = _summary_cells(s) if g.generations else ["n/a"] * 5
        rows.append([g.label, str(len(g.runs)), span, *cells])
    lines += ["## Summary", "", "Values of the group mean; decline relative to generation 0.", "",
              _table(["group", "runs", "generations", *_summary_header(threshold)], rows), ""]
    run_rows = []
    for g in groups:
        for r in g.runs:
            report = r.path / "report.md"
            link = f"[{r.name}]({os.path.relpath(report, out)})" if report.is_file() else r.name
            run_rows.append([link, g.label, str(r.config.data.data_seed), str(r.config.training.seed),
                             f"{len(r.generations)} of {r.config.loop.num_generations}", str(r.path)])
    lines += ["## Runs", "", _table(["run", "group", "data_seed", "seed", "generations", "folder"], run_rows), ""]
    _write_text(out / "comparison.md", "\n".join(lines))
    return out / "comparison.md"
