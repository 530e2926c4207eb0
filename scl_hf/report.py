"""Reports from run directories: the paper's figures and tables, for one run or side by side for many.

Everything here is computed from the files a run directory holds (``config.yaml``, each
``gen_XX/metrics.json`` and ``gen_XX/train_history.json``; names and layout in ``scl_hf.rundir``), never
from the loop's memory, so a report can be rebuilt at any time, from a copied folder, and while the run
is still going: a generation folder without ``metrics.json`` is running or was interrupted, and is
skipped and named in the report.

One run (``write_run_report``): ``report.md`` and PNG figures next to ``config.yaml``:
  correctness.png  stacked bars of syntax_error / false / true per generation (the paper's Figure 3 kind)
  diversity.png    diversity per generation (with a 95% band when it was estimated from sampled pairs)
  unique.png       unique samples per generation
  likelihood.png   held-out real data under M_t, S_t under M_0 and under M_t (runs with an ``eval`` block)
  distribution.png one panel per divergence from D0 and tail coverage (runs that measured them)
  diversity_measures.png  one panel per distinct-n, compression ratio, canonical and shape uniqueness
  train_loss.png   training and validation loss of each generation over the run's global step (only for
                   generations with a readable ``train_history.json``; older runs have none)
  curation.png     what curation kept and rejected per generation (only when the run curates)
  compute.png      diversity beside the samples drawn per kept row, per generation: what the diversity cost
                   (only when the run curates, selects or resamples)
Where a generation has a ``reference`` block (the metric on a real sample of S_t's size, drawn like D0),
each measure's figure draws it as a grey dashed line behind the samples' curve and its table cell shows it
in parentheses: how far from real, and how large sampling noise alone is. The report ends with the most
frequent samples of the first, middle and last generation (what the loop collapses to).
The loop calls it after every generation, so it must stay cheap: a few small JSON reads and under ten
figures (one to two seconds on a CPU).

Several runs (``write_comparison_report``): ``comparison.md`` and one overlay per curve of ``OVERLAYS``
(correctness, diversity, likelihoods, divergences, tails, diversity measures) per generation, one line
per group, behind them a grey band: the range of the reference samples' values over the runs. Runs
whose configs differ only in seeds, names, output folder, tracker or Hub settings
(``scl_hf.config.REPLICATE_KEYS``) form one group, drawn as the mean over its runs with a 95% t-interval band
(``scl_hf.stats``), over the generations all of them completed.

Every markdown table is one list of ``(header, getter)`` columns (``markdown_table``): the header row
and every data row come from the same list, so adding a metric or a curation reason (``REJECT_REASONS``
in ``scl_hf.cycles``) adds one column everywhere at once and cannot shift the others.

Figures use matplotlib's object API with the Agg canvas (no pyplot, no global state, no display).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from scl_hf import cycles
from scl_hf.config import REPLICATE_KEYS, SECTIONS, Config
from scl_hf.diversity import COLLAPSE_THRESHOLD
from scl_hf.rundir import REPORT, write_atomically, write_text
from scl_hf.runs import (
    DISTRIBUTION_MEASURES,
    DIVERSITY_MEASURES,
    OVERLAYS,
    Group,
    Run,
    describe,
    fmt,
    group_runs,
    is_number,
    load_run,
    reference_band,
    summarize,
)

LABEL_COLORS = {"syntax_error": "#d62728", "false": "#ff7f0e", "true": "#2ca02c"}  # red, orange, green
# One colour per curation reject reason, exactly the keys of scl_hf.cycles.REJECT_REASONS (a test checks).
REJECT_COLORS = {"syntax_error": "#d62728", "false": "#ff7f0e", "duplicate": "#9467bd", "quota": "#8c564b",
                 "uncorrectable": "#e377c2", "not_selected": "#7f7f7f"}
LOSS_FIGURE = "train_loss.png"  # the training-curve figure of a run report
LOSS_COLORMAP = "viridis"  # sequential: early generations dark, late ones light


# --- labels and markdown -------------------------------------------------------------------------


# A table column: its header and how one row's item becomes that column's cell.
Column = tuple[str, Callable[[object], str]]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a '|' inside a value must not split the cell


def markdown_table(columns: Sequence[Column], items: Sequence) -> str:
    """A markdown table with one column per ``(header, getter)`` and one row per item (``getter(item)``)."""
    lines = ["| " + " | ".join(_cell(header) for header, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(get(item)) for _, get in columns) + " |" for item in items]
    return "\n".join(lines)


def _value(block: str, key: str, digits: int = 4) -> Callable[[dict], str]:
    """The getter of ``metrics.json[block][key]``, formatted (n/a where absent)."""
    return lambda g: fmt((g.get(block) or {}).get(key), digits)


def _origin(origin: str) -> Callable[[dict], str]:
    """The getter of the number of training rows of one origin (real, synthetic, fresh)."""
    return lambda g: fmt(((g.get("data") or {}).get("origin_counts") or {}).get(origin))


def _generation(g: dict) -> str:
    return str(g["generation"])


# Per generation, on a metrics.json record.
GENERATION_COLUMNS: list[Column] = [
    ("generation", _generation),
    ("samples", _value("metrics", "num_samples")),
    ("true_rate", _value("metrics", "true_rate")),
    ("false_rate", _value("metrics", "false_rate")),
    ("syntax_error_rate", _value("metrics", "syntax_error_rate")),
    ("diversity", _value("metrics", "diversity")),
    ("num_unique", _value("metrics", "num_unique")),
    ("unique_rate", _value("metrics", "unique_rate")),
    ("novelty_rate", _value("metrics", "novelty_rate")),
    ("mean_length", _value("metrics", "mean_length", 2)),
    ("max_length", _value("metrics", "max_length")),
    ("mean_depth", _value("metrics", "mean_depth", 2)),
    ("truncated", _value("sampling", "num_truncated")),
    ("best_val_loss", _value("train", "best_val_loss")),
    ("heldout_nll", _value("eval", "heldout_nll")),
    ("samples_nll_m0", _value("eval", "samples_nll_m0")),
    ("samples_nll", _value("eval", "samples_nll")),
    # the compute behind the samples M_t trained on (curated runs; the thesis is about spending it)
    ("drawn per kept row", lambda g: fmt(((g.get("data") or {}).get("curation") or {}).get("samples_per_kept_row"),
                                          2)),
]

def _with_reference(key: str, digits: int = 4) -> Callable[[dict], str]:
    """The getter of ``metrics[key]`` followed by the reference sample's value in parentheses, where there is one."""
    def get(g: dict) -> str:
        ref = (g.get("reference") or {}).get(key)
        value = fmt((g.get("metrics") or {}).get(key), digits)
        return value if ref is None else f"{value} ({fmt(ref, digits)})"
    return get


OWN_FIGURE = ("diversity", "unique_rate")  # measures drawn in figures of their own, not among the panels
DISTRIBUTION_FIGURE = "distribution.png"
DIVERSITY_MEASURES_FIGURE = "diversity_measures.png"
REFERENCE_COLOR = "#7f7f7f"
REFERENCE_LABEL = "real sample of the same size (reference)"
TOP_SAMPLES_SHOWN = 10  # rows of the top-samples table (the metric keeps 10)
SAMPLE_CELL_CHARS = 60  # a longer sample is cut (with "…") in the top-samples table


def measure_columns(measures: list[tuple[str, str]]) -> list[Column]:
    """Per generation: each measure as ``value (reference value)``, on a metrics.json record."""
    return [("generation", _generation), *[(key, _with_reference(key)) for key, _ in measures]]


def _sample_cell(text: str) -> str:
    """A sample as a markdown code span: cut to ``SAMPLE_CELL_CHARS``, backticks and newlines made harmless."""
    if not text:
        return "(empty)"
    shown = text if len(text) <= SAMPLE_CELL_CHARS else text[:SAMPLE_CELL_CHARS] + "…"
    return "`" + shown.replace("`", "'").replace("\n", " ").replace("\r", " ") + "`"


def top_samples_table(generations: list[dict]) -> str | None:
    """The most frequent samples of the first, middle and last generation side by side (count in each cell);
    None when none of them records ``top_samples`` (older runs)."""
    picks = sorted({0, len(generations) // 2, len(generations) - 1})
    chosen = [generations[i] for i in picks]
    tops = [(g.get("metrics") or {}).get("top_samples") for g in chosen]
    if not any(isinstance(top, list) and top for top in tops):
        return None

    def cell(top, rank: int) -> str:
        if not isinstance(top, list) or rank >= len(top):
            return "" if isinstance(top, list) else "n/a"
        if not (isinstance(top[rank], list) and len(top[rank]) == 2):  # a hand-edited file: say so, do not stop
            return "n/a"
        text, count = top[rank]
        return f"{_sample_cell(str(text))} × {count}"

    columns = [("rank", lambda r: str(r + 1)),
               *[(f"gen {g['generation']} (of {fmt((g.get('metrics') or {}).get('num_samples'))})",
                  lambda r, top=top: cell(top, r)) for g, top in zip(chosen, tops, strict=True)]]
    rows = max(len(top) for top in tops if isinstance(top, list))
    return markdown_table(columns, range(min(rows, TOP_SAMPLES_SHOWN)))


# The likelihood curves of a run: (key of metrics.json["eval"], legend label, colour).
LIKELIHOODS = [
    ("heldout_nll", "held-out real data under M_t", "#1f77b4"),
    ("samples_nll_m0", "samples S_t under M_0", "#d62728"),
    ("samples_nll", "samples S_t under M_t itself", "#2ca02c"),
]
LIKELIHOOD_FIGURE = "likelihood.png"
COMPUTE_FIGURE = "compute.png"

# Training data and cost per generation, on a metrics.json record.
TRAINING_COLUMNS: list[Column] = [
    ("generation", _generation),
    ("train rows", _value("data", "num_rows")),
    ("real", _origin("real")),
    ("synthetic", _origin("synthetic")),
    ("fresh", _origin("fresh")),
    ("steps", _value("train", "steps")),
    ("best_step", _value("train", "best_step")),
    ("final_train_loss", _value("train", "final_train_loss")),
    ("train_tokens", _value("train", "train_tokens")),
    ("train s", _value("train", "seconds", 1)),
    ("of it validating s", _value("train", "validation_seconds", 1)),
    ("sampling s", _value("sampling", "seconds", 1)),
]


def _curation_value(key: str) -> Callable[[tuple[int, dict]], str]:
    return lambda gc: fmt(gc[1].get(key))


def _rejected(reason: str) -> Callable[[tuple[int, dict]], str]:
    return lambda gc: fmt((gc[1].get("rejected") or {}).get(reason))


def _wrong(verdict: str) -> Callable[[tuple[int, dict]], str]:
    return lambda gc: fmt((gc[1].get("wrong_verdicts") or {}).get(verdict))


def curation_columns() -> list[Column]:
    """Curation per generation, on ``(generation, data.curation)``: one ``rejected:`` column per reason of
    ``scl_hf.cycles.REJECT_REASONS``, in its order (read when called, so a new reason is a new column)."""
    return [("generation", lambda gc: str(gc[0])),
            ("steps", lambda gc: "+".join(gc[1].get("steps") or [])),
            ("input", _curation_value("input")),
            ("kept", _curation_value("kept")),
            *[(f"rejected: {reason}", _rejected(reason)) for reason in cycles.REJECT_REASONS],
            ("extra_samples", _curation_value("extra_samples")),
            ("shortfall", _curation_value("shortfall")),
            ("samples drawn", _curation_value("samples_drawn")),
            ("selection pool", lambda gc: fmt((gc[1].get("selection") or {}).get("pool_size"))),
            ("drawn per kept row", lambda gc: fmt(gc[1].get("samples_per_kept_row"), 2)),
            ("corrected", lambda gc: fmt((gc[1].get("corrections") or {}).get("made"))),
            ("verifier calls", _curation_value("verifier_calls")),
            ("wrong verdicts: accepted", _wrong("accepted")),
            ("wrong verdicts: rejected", _wrong("rejected"))]


def _decline(s: dict) -> str:
    return "n/a" if s["relative_decline"] is None else f"{100.0 * s['relative_decline']:.1f}%"


def _peak(s: dict) -> str:
    if s["true_rate_peak"] is None:
        return "n/a"
    return f"{s['true_rate_peak']:.4f} (gen {s['true_rate_peak_generation']})"


def summary_columns(threshold: float) -> list[Column]:
    """The collapse summary, on a ``summarize`` result."""
    return [("diversity at gen 0", lambda s: fmt(s["diversity_first"])),
            ("diversity at last gen", lambda s: f"{fmt(s['diversity_last'])} (gen {s['last_generation']})"),
            ("relative decline", _decline),
            (f"first gen below {threshold:g}",
             lambda s: "never" if s["below_threshold"] is None else str(s["below_threshold"])),
            ("true_rate peak", _peak)]


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
    write_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))  # a viewer never sees half a figure


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


def diversity_band(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)`` per generation: the 95% interval of a diversity estimated from sampled pairs (the metric's
    ``diversity_stderr``; NaN where exact), or None when every generation's diversity is exact."""
    stderr = run.values("metrics", "diversity_stderr")
    if all(s is None for s in stderr):
        return None
    se = np.array([np.nan if s is None else s for s in stderr], dtype=float)
    div = _curve(run, "metrics", "diversity")
    return div - 1.96 * se, div + 1.96 * se


def _plot_diversity(run: Run, path: Path, title: str, threshold: float) -> None:
    fig, ax = _figure(f"Diversity of samples per generation\n{title}", "generation",
                      "diversity (mean normalized edit distance)")
    gens = np.array(run.generation_numbers, dtype=float)
    div = _curve(run, "metrics", "diversity")
    ax.plot(gens, div, marker="o", color="#1f77b4", label="diversity")
    ref = _curve(run, "reference", "diversity")
    if np.isfinite(ref).any():
        ax.plot(gens, ref, color=REFERENCE_COLOR, linestyle="--", marker=".", label=REFERENCE_LABEL, zorder=1)
    band = diversity_band(run)
    if band is not None:  # estimated from sampled pairs: show its 95% interval
        ax.fill_between(gens, *band, color="#1f77b4", alpha=0.2, label="95% interval (sampled pairs)")
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    top = np.nanmax(np.concatenate([div, ref])) if np.isfinite(np.concatenate([div, ref])).any() else np.nan
    ax.set_ylim(0.0, max(1.05 * top, 1.2 * threshold) if np.isfinite(top) else 1.0)
    ax.legend(loc="best")
    _save(fig, path)


def _plot_compute(run: Run, path: Path, title: str) -> bool:
    """Diversity (left) beside the samples drawn per kept row (right), per generation: the thesis is about spending
    compute on samples. False (nothing drawn) when no generation records what it drew."""
    cost = _curve(run, "data.curation", "samples_per_kept_row")
    if not np.isfinite(cost).any():
        return False
    fig = Figure(figsize=(10.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"What the diversity cost\n{title}", fontsize=10)
    gens = np.array(run.generation_numbers, dtype=float)
    first = None
    for i, (values, ref, ylabel) in enumerate([
            (_curve(run, "metrics", "diversity"), _curve(run, "reference", "diversity"), "diversity of S_t"),
            (cost, None, "samples drawn per kept row (for D_t)")]):
        ax = fig.add_subplot(1, 2, i + 1, sharex=first)  # one generation axis for both
        first = first or ax
        ax.set_xlabel("generation")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", alpha=0.3)
        if ref is not None and np.isfinite(ref).any():
            ax.plot(gens, ref, color=REFERENCE_COLOR, linestyle="--", marker=".", label=REFERENCE_LABEL, zorder=1)
            ax.legend(loc="best", fontsize=8)
        ax.plot(gens, values, marker="o", color="#1f77b4" if i == 0 else "#8c564b")
        ax.set_ylim(bottom=0.0)
    _save(fig, path)
    return True


def _plot_likelihood(run: Run, path: Path, title: str) -> bool:
    """Mean NLL per token of the ``eval`` block per generation; False (nothing drawn) when no generation has one."""
    gens = np.array(run.generation_numbers, dtype=float)
    curves = [(_curve(run, "eval", key), label, color) for key, label, color in LIKELIHOODS]
    if all(np.isnan(values).all() for values, _, _ in curves):
        return False
    fig, ax = _figure(f"Likelihoods per generation\n{title}", "generation", "mean NLL per token (nats)")
    for values, label, color in curves:
        ax.plot(gens, values, marker="o", color=color, label=label)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)
    return True


def _curve(run: Run, block: str, key: str) -> np.ndarray:
    """``metrics.json[block][key]`` per generation as floats, NaN where absent (drawn as a gap)."""
    return np.array([np.nan if not is_number(v) else float(v) for v in run.values(block, key)], dtype=float)


def _plot_panels(run: Run, measures: list[tuple[str, str]], path: Path, title: str) -> bool:
    """One small panel per measure: the samples' curve and, behind it, the reference sample's; False (nothing
    drawn) when no generation has any of the measures (older runs)."""
    drawn = [(key, what, _curve(run, "metrics", key), _curve(run, "reference", key)) for key, what in measures]
    drawn = [d for d in drawn if np.isfinite(d[2]).any()]
    if not drawn:
        return False
    cols = 3 if len(drawn) > 4 else 2
    rows = -(-len(drawn) // cols)
    fig = Figure(figsize=(4.0 * cols, 2.8 * rows + 0.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=10)
    gens = np.array(run.generation_numbers, dtype=float)
    for i, (key, what, values, ref) in enumerate(drawn):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_title(f"{key}\n{what}", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("generation", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        if key.startswith("tail_coverage"):
            ax.axhline(1.0, color="black", linewidth=0.6, alpha=0.5)  # tails kept as often as in D0
        if np.isfinite(ref).any():
            ax.plot(gens, ref, color=REFERENCE_COLOR, linestyle="--", marker=".", linewidth=1, zorder=1)
        ax.plot(gens, values, color="#1f77b4", marker="o", markersize=3)
        ax.set_ylim(bottom=0.0)
    fig.legend(handles=[Line2D([], [], color="#1f77b4", marker="o", markersize=3, label="samples S_t"),
                        Line2D([], [], color=REFERENCE_COLOR, linestyle="--", marker=".", label=REFERENCE_LABEL)],
               loc="outside lower center", ncols=2, fontsize=8)
    _save(fig, path)
    return True


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
    for reason in cycles.REJECT_REASONS:
        color = REJECT_COLORS[reason]
        count = np.array([float((c.get("rejected") or {}).get(reason) or 0) for _, c in rows])
        if count.any():
            ax.bar(gens, count, bottom=bottom, color=color, width=0.8, label=f"rejected: {reason.replace('_', ' ')}")
            bottom += count
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def loss_curves(run: Run) -> dict[int, dict[str, np.ndarray]]:
    """Per generation with a history: ``train_step``/``train_loss`` and ``val_step``/``val_loss`` arrays, steps
    global: generation × ``max_steps`` + the step within the generation (the tracker's step)."""
    curves = {}
    for gen, history in sorted(run.histories.items()):
        offset = gen * run.config.training.max_steps
        train = [(r["step"], r["loss"]) for r in history if is_number(r.get("loss"))]
        val = [(r["step"], r["val_loss"]) for r in history if is_number(r.get("val_loss"))]
        curves[gen] = {
            "train_step": np.array([offset + s for s, _ in train], dtype=float),
            "train_loss": np.array([v for _, v in train], dtype=float),
            "val_step": np.array([offset + s for s, _ in val], dtype=float),
            "val_loss": np.array([v for _, v in val], dtype=float),
        }
    return curves


def _plot_loss(run: Run, path: Path, title: str) -> None:
    curves = loss_curves(run)
    fig, ax = _figure(f"Training and validation loss of each generation\n{title}",
                      "global step (generation × max_steps + step)", "loss (cross-entropy per token)")
    gens = list(curves)
    norm = Normalize(vmin=gens[0], vmax=max(gens[-1], gens[0] + 1))
    cmap = matplotlib.colormaps[LOSS_COLORMAP]
    for gen, c in curves.items():
        color = cmap(norm(gen))
        if gen > 0:  # where this generation's fresh training run starts
            ax.axvline(gen * run.config.training.max_steps, color="grey", alpha=0.2, linewidth=0.8)
        ax.plot(c["train_step"], c["train_loss"], color=color, linewidth=1.2)
        ax.plot(c["val_step"], c["val_loss"], color=color, linestyle="--", marker="o", markersize=3, linewidth=0.8)
    values = np.concatenate([np.concatenate([c["train_loss"], c["val_loss"]]) for c in curves.values()])
    if np.isfinite(values).any():
        ax.set_ylim(0.0, 1.05 * np.nanmax(np.where(np.isfinite(values), values, np.nan)))
    fig.legend(handles=[Line2D([], [], color="black", linewidth=1.2, label="training (mean over a logging window)"),
                        Line2D([], [], color="black", linestyle="--", marker="o", markersize=3, label="validation")],
               loc="outside lower center", ncols=2, fontsize=8)  # below the axes: never over a curve
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="generation",
                 ticks=MaxNLocator(integer=True))
    _save(fig, path)


# --- one run -------------------------------------------------------------------------------------


def _curation(run: Run) -> list[tuple[int, dict]]:
    """``(generation, data.curation)`` for every generation whose training set was curated."""
    pairs = [(g["generation"], (g.get("data") or {}).get("curation")) for g in run.generations]
    return [(gen, c) for gen, c in pairs if isinstance(c, dict)]


def write_run_report(run_dir: str | Path, *, threshold: float = COLLAPSE_THRESHOLD) -> Path:
    """Write ``report.md`` and its PNG figures into ``run_dir``; returns the path of ``report.md``.

    Works on incomplete and running runs (complete generations only; the others are named). Raises
    ``RunDirError`` (an ``SclHfError``, a ``ValueError``) for a folder that is not a run directory.
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
        lines += ["## Summary", "", markdown_table(summary_columns(threshold), [summary]), ""]
        _plot_correctness(run, run.path / "correctness.png", title)
        _plot_diversity(run, run.path / "diversity.png", title, threshold)
        _plot_unique(run, run.path / "unique.png", title)
        lines += ["## Figures", "", "![correctness per generation](correctness.png)", "",
                  "![diversity per generation](diversity.png)", "", "![unique samples per generation](unique.png)", ""]
        if _plot_likelihood(run, run.path / LIKELIHOOD_FIGURE, title):
            lines += [f"![likelihoods per generation]({LIKELIHOOD_FIGURE})", ""]
        if _plot_panels(run, DISTRIBUTION_MEASURES, run.path / DISTRIBUTION_FIGURE,
                        f"Distance from the real distribution (D0) per generation\n{title}"):
            lines += [f"![distance from the real distribution per generation]({DISTRIBUTION_FIGURE})", ""]
        panels = [m for m in DIVERSITY_MEASURES if m[0] not in OWN_FIGURE]
        if _plot_panels(run, panels, run.path / DIVERSITY_MEASURES_FIGURE,
                        f"Diversity measures per generation\n{title}"):
            lines += [f"![diversity measures per generation]({DIVERSITY_MEASURES_FIGURE})", ""]
        if run.histories:
            _plot_loss(run, run.path / LOSS_FIGURE, title)
            lines += [f"![training and validation loss per generation]({LOSS_FIGURE})", ""]
        curation = _curation(run)
        if curation:
            _plot_curation(curation, run.path / "curation.png", title)
            lines += ["![curation per generation](curation.png)", ""]
        if _plot_compute(run, run.path / COMPUTE_FIGURE, title):
            lines += [f"![diversity beside the samples drawn per kept row]({COMPUTE_FIGURE})", ""]
        lines += ["## Per generation", "", "Rates are shares of the generation's samples; lengths are in word tokens.",
                  "", markdown_table(GENERATION_COLUMNS, run.generations), "", "## Training data and cost", "",
                  markdown_table(TRAINING_COLUMNS, run.generations), ""]
        reference_note = ("In parentheses: the same measure on a real sample of the same size, drawn like D0 from "
                          "its own seed (what samples that follow the real distribution score).")
        lines += ["## Distance from the real distribution", "",
                  "Jensen-Shannon divergences (base 2, 0 = same distribution) from D0, and tail coverage (share "
                  "of samples in D0's rarest stratum over D0's share: 1 = tails kept, 0 = lost). " + reference_note,
                  "", markdown_table(measure_columns(DISTRIBUTION_MEASURES), run.generations), "",
                  "## Diversity measures", "",
                  "Distinct-n: distinct word n-grams over all n-grams; compression ratio: bytes of the joined "
                  "samples over their gzip size; canonical and shape rates: distinct expressions after printing "
                  "each parsed tree without redundant parentheses, and with its literals abstracted, as a share of "
                  "the parsable samples. " + reference_note,
                  "", markdown_table(measure_columns(DIVERSITY_MEASURES), run.generations), ""]
        top = top_samples_table(run.generations)
        if top is not None:
            lines += ["## Most frequent samples", "", "What the loop converges to: the most frequent samples of the "
                      "first, middle and last complete generation, with their counts.", "", top, ""]
        if curation:
            lines += ["## Curation", "", "How each generation's training set was built from the previous "
                      "generation's samples.", "", markdown_table(curation_columns(), curation), ""]
    lines += ["## Config", "", "```yaml", _config_yaml(cfg).rstrip(), "```", ""]
    write_text(run.path / REPORT, "\n".join(lines))
    return run.path / REPORT


# --- several runs --------------------------------------------------------------------------------


def plot_overlay(groups: list[Group], key: str, path: Path, ylabel: str, threshold: float | None,
                 title: str | None = None) -> None:
    """One measure of several groups per generation: each group's mean over its seeds with its interval band and
    the seeds faint, behind them the range of the reference samples (the comparison's and the figures' plot)."""
    fig, ax = _figure(title or f"{key} per generation: mean over seeds, 95% t-interval", "generation", ylabel,
                      size=(8.0, 6.0))
    palette = matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"]
    colors = [palette(i % palette.N) for i in range(len(groups))]
    top = 0.0
    band = reference_band(groups, key)
    if band is not None:  # behind every curve: where samples that follow the real distribution lie
        gens, low, high = band
        ax.fill_between(gens, low, high, color=REFERENCE_COLOR, alpha=0.25, linewidth=0, zorder=0,
                        label="real samples of the same size (range over runs)")
        ax.plot(gens, (low + high) / 2, color=REFERENCE_COLOR, linewidth=0.6, zorder=0)
        top = float(high.max())
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
    ax.set_ylim(0.0, 1.0 if key in ("true_rate", "novelty_rate") else max(1.05 * top, 1.2 * (threshold or 0.0), 0.05))
    fig.legend(loc="outside lower center", ncols=2 if len(groups) > 4 else 1, fontsize=8)  # below: long labels
    _save(fig, path)


def _on_summary(get: Callable[[dict], str]) -> Callable[[tuple[Group, dict | None]], str]:
    return lambda gs: "n/a" if gs[1] is None else get(gs[1])


def group_summary_columns(threshold: float) -> list[Column]:
    """The comparison's summary, on ``(group, summarize of its mean curves)`` (None: no common generation)."""
    return [("group", lambda gs: gs[0].label),
            ("runs", lambda gs: str(len(gs[0].runs))),
            ("generations", lambda gs: f"{gs[0].generations[0]}..{gs[0].generations[-1]}" if gs[0].generations
             else "none"),
            *[(header, _on_summary(get)) for header, get in summary_columns(threshold)]]


def run_list_columns(out: Path) -> list[Column]:
    """The comparison's list of runs, on ``(run, its group)``; a run with a report links to it from ``out``."""
    def link(rg: tuple[Run, Group]) -> str:
        report = rg[0].path / REPORT
        return f"[{rg[0].name}]({os.path.relpath(report, out)})" if report.is_file() else rg[0].name

    return [("run", link),
            ("group", lambda rg: rg[1].label),
            ("data seed", lambda rg: str(rg[0].config.real_data_seed)),
            ("seed", lambda rg: str(rg[0].config.training.seed)),
            ("generations", lambda rg: f"{len(rg[0].generations)} of {rg[0].config.loop.num_generations}"),
            ("folder", lambda rg: str(rg[0].path))]


def write_comparison_report(run_dirs: list[str | Path], output_dir: str | Path, *,
                            threshold: float = COLLAPSE_THRESHOLD) -> Path:
    """Write ``comparison.md`` and ``comparison_<key>.png`` per curve of ``OVERLAYS`` into ``output_dir``.

    Runs whose configs differ only in ``REPLICATE_KEYS`` are one group (mean and 95% t-interval band over
    the generations all of them completed). Returns the path of ``comparison.md``.
    """
    if not run_dirs:
        raise ValueError("write_comparison_report needs at least one run directory")
    return write_comparison([load_run(d) for d in run_dirs], output_dir, threshold=threshold)


def write_comparison(runs: list[Run], output_dir: str | Path, *, threshold: float = COLLAPSE_THRESHOLD) -> Path:
    """``write_comparison_report`` of runs already read (``load_run``): a sweep reads each run once for all its
    reports."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    lines = ["# Comparison of runs", "",
             "Runs whose configs differ only in " + ", ".join(sorted(REPLICATE_KEYS)) + " are one group: its line is "
             "the mean over its runs, the band the 95% Student-t interval of that mean over the seeds (exact for "
             "normal data at any number of seeds; a percentile bootstrap over 3 seeds covers about 75%), over the "
             "generations every run of the group completed. "
             "The grey band behind a curve, where there is one, is the range over the runs of the same measure on "
             "a real sample of the same size (drawn like D0): where samples that follow the real distribution lie.",
             ""]
    plotted = [g for g in groups if g.generations]
    for _, key, ylabel in OVERLAYS:
        if not any(np.isfinite(v) for g in plotted for values in g.per_run[key] for v in values):
            continue  # older runs without this value
        plot_overlay(plotted, key, out / f"comparison_{key}.png", ylabel, threshold if key == "diversity" else None)
        lines += [f"![{key} per generation](comparison_{key}.png)", ""]
    summaries = [(g, summarize(g.generations, g.curves["diversity"]["mean"], g.curves["true_rate"]["mean"], threshold)
                  if g.generations else None) for g in groups]
    lines += ["## Summary", "", "Values of the group mean; decline relative to generation 0.", "",
              markdown_table(group_summary_columns(threshold), summaries), ""]
    members = [(r, g) for g in groups for r in g.runs]
    lines += ["## Runs", "", markdown_table(run_list_columns(out), members), ""]
    write_text(out / "comparison.md", "\n".join(lines))
    return out / "comparison.md"
