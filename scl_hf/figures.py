"""A sweep's figures for questions: a few of its configurations, one measure at a time, with intervals.

The comparison report draws every configuration of a sweep in one figure per measure; a question ("does fresh
data slow the collapse?") needs a few of them side by side, numbers at chosen generations and the difference
to a baseline with its interval. A sweep file lists such figures under ``figures``::

    figures:
      - name: paper_cycles                      # file names: figures/paper_cycles_<measure>.png
        title: "Q2: the paper's cycles"
        recipes: [full_synthetic, balanced]     # recipe file stems of the sweep (every grid point of each)
        measures: [diversity, unique_rate]      # keys of scl_hf.report.OVERLAYS
        generations: [0, 5, 14]                 # the table's columns (default: the first and the last)
        baseline: full_synthetic                # optional: each configuration minus it, at the last column

and the sweep writes ``figures/figures.md`` with, per figure and measure, the overlay (mean over seeds, 95%
percentile bootstrap band of the mean, the seeds faint, the real reference sample grey) and a table: per
configuration the mean and interval at each generation, the seeds' own values at the last one, and the
difference to the baseline with a bootstrap interval (the groups resampled independently). Every figure and
table names the sweep command that made it. Only runs with every generation complete are used; the others are
listed as missing, so a partial sweep gives honest partial figures.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scl_hf.config import ConfigError, invalid
from scl_hf.diversity import COLLAPSE_THRESHOLD
from scl_hf.report import (
    BOOTSTRAP_RESAMPLES,
    OVERLAYS,
    Group,
    _fmt,
    _plot_overlay,
    bootstrap_difference,
    bootstrap_interval,
    group_runs,
    load_run,
    markdown_table,
    reference_values,
)
from scl_hf.rundir import write_text

FIGURE_KEYS = ("name", "title", "recipes", "measures", "generations", "baseline")
MEASURES = {key: ylabel for _, key, ylabel in OVERLAYS}
REFERENCE_LABEL = "real sample of the same size"


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    recipes: tuple[str, ...]
    measures: tuple[str, ...]
    generations: tuple[int, ...] | None = None  # None: the first and the last common generation
    baseline: str | None = None


def _names(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def parse_figures(raw: object, recipes: list[str]) -> list[FigureSpec]:
    """The sweep file's ``figures`` (a list of mappings), validated against its recipe stems ``recipes``."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise ConfigError(f"figures must be a list of mappings with keys from {FIGURE_KEYS}, got {raw!r}")
    specs: list[FigureSpec] = []
    for i, fig in enumerate(raw):
        where = f"figures[{i}]"
        for key in fig:
            if key not in FIGURE_KEYS:
                raise ConfigError(f"unknown key {key!r} in {where}; allowed keys: {', '.join(FIGURE_KEYS)}")
        name = fig.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise invalid(f"{where}: name", "a file name of letters, digits, '_', '.', '-'", name)
        if any(s.name == name for s in specs):
            raise invalid(f"{where}: name", "unique among the figures", name)
        title = fig.get("title")
        if not isinstance(title, str) or not title.strip():
            raise invalid(f"{where}: title", "a non-empty string", title)
        chosen = fig.get("recipes")
        if not _names(chosen) or any(r not in recipes for r in chosen) or len(set(chosen)) != len(chosen):
            raise invalid(f"{where}: recipes", f"a non-empty list of distinct recipe stems of the sweep {recipes}",
                          chosen)
        measures = fig.get("measures")
        if not _names(measures) or any(m not in MEASURES for m in measures):
            raise invalid(f"{where}: measures", f"a non-empty list of {sorted(MEASURES)}", measures)
        gens = fig.get("generations")
        if gens is not None and (not isinstance(gens, list) or not gens or not all(
                isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gens)):
            raise invalid(f"{where}: generations", "a non-empty list of integers >= 0", gens)
        baseline = fig.get("baseline")
        if baseline is not None and baseline not in chosen:
            raise invalid(f"{where}: baseline", f"one of the figure's recipes {chosen}", baseline)
        specs.append(FigureSpec(name, title.strip(), tuple(chosen), tuple(measures),
                                None if gens is None else tuple(gens), baseline))
    return specs


def _label(recipe: str, point: dict) -> str:
    return ", ".join([recipe, *[f"{k}={v}" for k, v in point.items()]])


def figure_groups(spec: FigureSpec, runs, loaded: dict | None = None) -> list[tuple[str, Group]]:
    """``(recipe, group)`` per configuration of ``spec`` (a recipe x grid point) that has a run among ``runs``
    (``SweepRun``s with every generation complete), labelled by recipe and grid values, in the figure's order.
    ``loaded``: run name -> its ``report.Run``, read once for all figures (None: read here)."""
    if loaded is None:
        loaded = {run.name: load_run(run.config.run_dir) for run in runs if run.recipe in spec.recipes}
    out = []
    for recipe in spec.recipes:
        buckets: dict[tuple, list] = {}
        for run in runs:
            if run.recipe == recipe:
                buckets.setdefault(tuple(run.point.items()), []).append(run)
        for point, members in buckets.items():
            groups = group_runs([loaded[run.name] for run in members])
            if len(groups) != 1:  # same recipe and grid point, so only replicate keys differ
                raise ValueError(f"runs of {recipe} {dict(point)} differ in more than their seeds")
            out.append((recipe, dataclasses.replace(groups[0], label=_label(recipe, dict(point)))))
    return out


def _at(group: Group, key: str, generation: int) -> np.ndarray:
    """The runs' values of ``key`` at ``generation`` (finite ones; empty where the group lacks it)."""
    if generation not in group.generations:
        return np.array([])
    i = group.generations.index(generation)
    values = np.array([curve[i] for curve in group.per_run[key]], dtype=float)
    return values[np.isfinite(values)]


def _interval(values: np.ndarray, digits: int) -> str:
    """``mean [low, high]``; one value alone has no interval and is shown bare."""
    if values.size == 0:
        return "n/a"
    if values.size == 1:
        return _fmt(float(values[0]), digits)
    low, high = bootstrap_interval(values)
    return f"{_fmt(float(values.mean()), digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def figure_table(spec: FigureSpec, groups: list[tuple[str, Group]], key: str, digits: int = 3) -> str:
    """The table of one measure: mean [95% interval] per configuration and generation, the seeds at the last
    generation, the difference to the baseline there, and the reference sample's row where there is one."""
    known = sorted(set().union(*(g.generations for _, g in groups)))  # a group without a generation: n/a there
    gens = list(spec.generations) if spec.generations is not None else [known[0], known[-1]]
    last = gens[-1]
    base = next((g for recipe, g in groups if recipe == spec.baseline), None)
    columns = [("configuration", lambda row: row[0]), ("runs", lambda row: row[1])]
    columns += [(f"gen {g}", lambda row, i=i: row[2][i]) for i, g in enumerate(gens)]
    columns.append((f"seeds at gen {last}", lambda row: row[3]))
    if base is not None:
        columns.append((f"minus {base.label} at gen {last}", lambda row: row[4]))
    rows = []
    for _, group in groups:
        seeds = _at(group, key, last)
        diff = "n/a"
        if base is not None and group is not base and seeds.size and _at(base, key, last).size:
            d, low, high = bootstrap_difference(seeds, _at(base, key, last))
            diff = f"{d:+.{digits}f}" + ("" if low == high else f" [{low:+.{digits}f}, {high:+.{digits}f}]")
        elif group is base:
            diff = "baseline"
        rows.append((group.label, str(len(group.runs)), [_interval(_at(group, key, g), digits) for g in gens],
                     ", ".join(_fmt(float(v), digits) for v in seeds) or "n/a", diff))
    reference = reference_values([g for _, g in groups], key)
    if any(g in reference for g in gens):
        rows.append((REFERENCE_LABEL, "", [_interval(np.array(reference.get(g, [])), digits) for g in gens], "", ""))
    return markdown_table(columns, rows)


def write_figures(specs: list[FigureSpec], runs, loaded: dict, missing: list[str], out: Path,
                  command: str) -> Path | None:
    """Write ``out/figures.md`` and ``out/<name>_<measure>.png`` for every figure; ``runs``: the complete
    ``SweepRun``s, ``loaded``: run name -> its ``report.Run`` (read once for all figures and the other reports),
    ``missing``: names of the runs left out. Returns the markdown's path (None: no figures)."""
    if not specs:
        return None
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Figures", "",
             f"Made by `{command}` from {len(runs)} complete runs"
             + (f"; not yet complete, so left out: {', '.join(missing)}." if missing else ", every run of the sweep."),
             "", "Each line is the mean over a configuration's seeds, its band the 95% percentile bootstrap interval "
             f"of that mean ({BOOTSTRAP_RESAMPLES} resamples of the seeds), the faint lines the seeds themselves; the "
             "grey band, where there is one, is the range over the runs of the same measure on a real sample of the "
             "same size. In the tables: mean [95% interval], or the value alone for a configuration with one "
             "complete run; the difference to the baseline resamples both groups independently. With few seeds a "
             "percentile bootstrap interval is narrow (it cannot reach beyond the seeds' own range): read it with "
             "the seeds' values beside it.", ""]
    for spec in specs:
        groups = figure_groups(spec, runs, loaded)
        lines += [f"## {spec.title}", ""]
        if not groups:
            lines += ["No complete run of these configurations yet.", ""]
            continue
        for key in spec.measures:
            plotted = [g for _, g in groups if g.generations]
            path = out / f"{spec.name}_{key}.png"
            _plot_overlay(plotted, key, path, MEASURES[key], COLLAPSE_THRESHOLD if key == "diversity" else None,
                          title=f"{spec.title}: {key}\n{command}")
            lines += [f"### {key}", "", f"![{spec.title}: {key}]({path.name})", "",
                      figure_table(spec, groups, key), "", f"Made by `{command}`.", ""]
    write_text(out / "figures.md", "\n".join(lines))
    return out / "figures.md"
