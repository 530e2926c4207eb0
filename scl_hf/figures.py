"""A sweep's figures for questions: a few of its configurations, one measure at a time, with intervals.

The comparison report draws every configuration of a sweep in one figure per measure; a question ("does fresh
data slow the collapse?") needs a few of them side by side, numbers at chosen generations and the difference
to a baseline with its interval. A sweep file lists such figures under ``figures``::

    figures:
      - name: paper_cycles                      # file names: figures/paper_cycles_<measure>.png
        title: "Q2: the paper's cycles"
        recipes: [full_synthetic, balanced]     # recipe file stems of the sweep (every grid point of each)
        measures: [diversity, unique_rate]      # keys of scl_hf.runs.OVERLAYS
        generations: [0, 5, 14]                 # the table's columns (default: the first and the last)
        baseline: full_synthetic                # optional: each configuration minus it, at the last column
        null_check: false                       # optional: true for a null check against the baseline

and the sweep writes ``figures/figures.md`` with, per figure and measure, the overlay (mean over seeds, 95%
t-interval band of the mean, the seeds faint, the real reference sample grey) and a table: per configuration
the mean and 95% t-interval at each generation, the seeds' own values at the last one, and the difference to
the baseline there, paired by seed, with its t-interval, the paired t-test's p and the exact sign-flip p
(``scl_hf.stats``; "clear" is the paired t-test at 0.05, nothing else). Per figure, the endpoints fixed in
advance (``runs.endpoints``): generations to collapse (Kaplan-Meier median, events, a log-rank test against
the baseline), the diversity curve's mean level and the final held-out NLL, each with its interval and paired
test. ``null_check: true`` on a figure whose configurations are equal in distribution by construction (``select:
random`` against ``full_synthetic``) adds the rejection rate of the paired t-test over every measure and
generation: it must be near 5%. Every figure and table names the sweep command that made it. Only runs with
every generation complete are used; the others are listed as missing, so a partial sweep gives honest partial
figures.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scl_hf.config import ConfigError, invalid
from scl_hf.diversity import COLLAPSE_THRESHOLD
from scl_hf.report import REFERENCE_LABEL, markdown_table, plot_overlay
from scl_hf.rundir import write_text
from scl_hf.runs import (
    COLLAPSE_SHARE,
    OVERLAYS,
    Group,
    endpoints,
    fmt,
    group_runs,
    load_run,
    paired,
    reference_values,
    values_at,
)
from scl_hf.stats import CLEAR_LEVEL, Comparison, is_clear, kaplan_meier, logrank_test, rejection_rate, t_interval

FIGURE_KEYS = ("name", "title", "recipes", "measures", "generations", "baseline", "null_check")
MEASURES = {key: ylabel for _, key, ylabel in OVERLAYS}


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    recipes: tuple[str, ...]
    measures: tuple[str, ...]
    generations: tuple[int, ...] | None = None  # None: the first and the last common generation
    baseline: str | None = None
    null_check: bool = False  # the configurations equal the baseline in distribution: the tests' rejection rate


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
        null = fig.get("null_check", False)
        if not isinstance(null, bool) or (null and baseline is None):
            raise invalid(f"{where}: null_check", "true or false, and true only with a baseline", null)
        specs.append(FigureSpec(name, title.strip(), tuple(chosen), tuple(measures),
                                None if gens is None else tuple(gens), baseline, null))
    return specs


def _label(recipe: str, point: dict) -> str:
    return ", ".join([recipe, *[f"{k}={v}" for k, v in point.items()]])


def figure_groups(spec: FigureSpec, runs, loaded: dict | None = None) -> list[tuple[str, Group]]:
    """``(recipe, group)`` per configuration of ``spec`` (a recipe x grid point) that has a run among ``runs``
    (``SweepRun``s with every generation complete), labelled by recipe and grid values, in the figure's order.
    ``loaded``: run name -> its ``runs.Run``, read once for all figures (None: read here)."""
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


def _interval(values: list[float], digits: int) -> str:
    """``mean [low, high]``, the 95% t-interval over seeds; one value alone has no interval and is shown bare."""
    if not values:
        return "n/a"
    mean, low, high = t_interval(values)
    if len(values) == 1:
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def _p(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def _difference(comparison: Comparison | None, digits: int) -> str:
    """A paired difference: ``+d [low, high], p = t-test (sign-flip p)``, marked clear by ``stats.is_clear``."""
    if comparison is None:
        return "n/a (fewer than 2 common seeds)"
    c = comparison
    text = (f"{c.mean_difference:+.{digits}f} [{c.low:+.{digits}f}, {c.high:+.{digits}f}], p = {_p(c.t_pvalue)} "
            f"(sign-flip {_p(c.permutation_pvalue)}, {c.n} pairs)")
    return text + (", clear" if is_clear(c) else "")


def figure_table(spec: FigureSpec, groups: list[tuple[str, Group]], key: str, digits: int = 3) -> str:
    """The table of one measure: mean [95% t-interval] per configuration and generation, the seeds at the last
    generation, the paired difference to the baseline there, and the reference sample's row where there is one."""
    known = sorted(set().union(*(g.generations for _, g in groups)))  # a group without a generation: n/a there
    gens = list(spec.generations) if spec.generations is not None else [known[0], known[-1]]
    last = gens[-1]
    base = next((g for recipe, g in groups if recipe == spec.baseline), None)
    columns = [("configuration", lambda row: row[0]), ("runs", lambda row: row[1])]
    columns += [(f"gen {g}", lambda row, i=i: row[2][i]) for i, g in enumerate(gens)]
    columns.append((f"seeds at gen {last}", lambda row: row[3]))
    if base is not None:
        columns.append((f"minus {base.label} at gen {last}, paired by seed", lambda row: row[4]))
    rows = []
    for _, group in groups:
        seeds = values_at(group, key, last)
        if group is base:
            diff = "baseline"
        elif base is None or not seeds:
            diff = "n/a"
        else:
            diff = _difference(paired(seeds, values_at(base, key, last)), digits)
        rows.append((group.label, str(len(group.runs)),
                     [_interval(list(values_at(group, key, g).values()), digits) for g in gens],
                     ", ".join(fmt(seeds[s], digits) for s in sorted(seeds)) or "n/a", diff))
    reference = reference_values([g for _, g in groups], key)
    if any(g in reference for g in gens):
        rows.append((REFERENCE_LABEL, "", [_interval(reference.get(g, []), digits) for g in gens], "", ""))
    return markdown_table(columns, rows)


def _km_median(collapse: list[tuple[int, bool]]) -> str:
    """The Kaplan-Meier median generation to collapse: the first time the estimate is at or below 0.5."""
    steps = kaplan_meier([t for t, _ in collapse], [o for _, o in collapse])
    median = next((t for t, survival in steps if survival <= 0.5), None)
    return f"gen {median:g}" if median is not None else f"not reached by gen {max(t for t, _ in collapse)}"


def endpoints_table(spec: FigureSpec, groups: list[tuple[str, Group]], digits: int = 3) -> str:
    """Per configuration, the endpoints fixed in advance (``runs.endpoints``) with intervals, and against the
    baseline: the log-rank test of the collapse times and paired tests of the other two."""
    ends = {id(g): [endpoints(run) for run in g.runs] for _, g in groups}
    base = next((g for recipe, g in groups if recipe == spec.baseline), None)

    def by_seed(group: Group, field: str) -> dict[int, float]:
        return {e.seed: getattr(e, field) for e in ends[id(group)] if np.isfinite(getattr(e, field))}

    def collapse(group: Group) -> str:
        times = [e.collapse for e in ends[id(group)]]
        return f"{sum(o for _, o in times)} of {len(times)} collapsed; median {_km_median(times)}"

    def logrank(group: Group) -> str:
        if base is None or group is base:
            return "baseline" if group is base else "n/a"
        a, b = [e.collapse for e in ends[id(group)]], [e.collapse for e in ends[id(base)]]
        _, p = logrank_test([t for t, _ in a], [o for _, o in a], [t for t, _ in b], [o for _, o in b])
        return f"p = {_p(p)}"

    def measure(field: str) -> Callable[[Group], str]:
        return lambda g: _interval(list(by_seed(g, field).values()), digits)

    def versus(field: str) -> Callable[[Group], str]:
        def get(g: Group) -> str:
            if base is None or g is base:
                return "baseline" if g is base else "n/a"
            return _difference(paired(by_seed(g, field), by_seed(base, field)), digits)
        return get

    columns = [("configuration", lambda g: g.label),
               (f"generations to collapse (unique_rate < {COLLAPSE_SHARE:g})", collapse)]
    if base is not None:
        columns.append(("log-rank vs baseline", logrank))
    columns.append(("diversity, mean level over generations", measure("diversity_auc")))
    if base is not None:
        columns.append(("minus baseline", versus("diversity_auc")))
    columns.append(("held-out NLL at the last generation", measure("final_heldout_nll")))
    if base is not None:
        columns.append(("minus baseline", versus("final_heldout_nll")))
    return markdown_table(columns, [g for _, g in groups])


def null_check_text(spec: FigureSpec, groups: list[tuple[str, Group]]) -> str:
    """The paired t-tests of every other configuration against the baseline, over every measure of ``OVERLAYS``
    and every generation both have: how often they reject at ``CLEAR_LEVEL`` where nothing differs."""
    base = next(g for recipe, g in groups if recipe == spec.baseline)
    pvalues = []
    for _, group in groups:
        if group is base:
            continue
        for key in MEASURES:
            for generation in sorted(set(group.generations) & set(base.generations)):
                c = paired(values_at(group, key, generation), values_at(base, key, generation))
                if c is not None and not np.isnan(c.t_pvalue):
                    pvalues.append(c.t_pvalue)
    if not pvalues:
        return "Null check: no paired comparison yet (fewer than two common seeds)."
    rate = rejection_rate(pvalues)
    return (f"Null check: these configurations are equal to the baseline in distribution by construction, so the "
            f"paired t-test at {CLEAR_LEVEL:g} should reject about {CLEAR_LEVEL:.0%} of the time. Over "
            f"{len(pvalues)} comparisons (every measure of the comparison report at every generation) it rejected "
            f"{rate:.1%} ({round(rate * len(pvalues))}). The tests share runs across measures and generations, so "
            f"they are not independent: read the rate, not a p-value of it.")


def write_figures(specs: list[FigureSpec], runs, loaded: dict, missing: list[str], out: Path,
                  command: str) -> Path | None:
    """Write ``out/figures.md`` and ``out/<name>_<measure>.png`` for every figure; ``runs``: the complete
    ``SweepRun``s, ``loaded``: run name -> its ``runs.Run`` (read once for all figures and the other reports),
    ``missing``: names of the runs left out. Returns the markdown's path (None: no figures)."""
    if not specs:
        return None
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Figures", "",
             f"Made by `{command}` from {len(runs)} complete runs"
             + (f"; not yet complete, so left out: {', '.join(missing)}." if missing else ", every run of the sweep."),
             "", "Each line is the mean over a configuration's seeds, its band the 95% Student-t interval of that "
             "mean, the faint lines the seeds themselves; the grey band, where there is one, is the range over the "
             "runs of the same measure on a real sample of the same size. In the tables: mean [95% t-interval], or "
             "the value alone for a configuration with one complete run (a percentile bootstrap over 3 seeds, used "
             "before, covers about 75%, not 95%). Differences to the baseline are paired by seed (the same seed "
             "draws the same D0 and held-out set): the mean difference, its t-interval, the two-sided paired "
             f"t-test's p and the exact sign-flip p (which cannot fall below 2/2^n: 0.25 at 3 seeds, 0.0625 at 5). "
             f"A difference is called clear when the paired t-test's p < {CLEAR_LEVEL:g}, and only then.", ""]
    for spec in specs:
        groups = figure_groups(spec, runs, loaded)
        lines += [f"## {spec.title}", ""]
        if not groups:
            lines += ["No complete run of these configurations yet.", ""]
            continue
        for key in spec.measures:
            plotted = [g for _, g in groups if g.generations]
            path = out / f"{spec.name}_{key}.png"
            plot_overlay(plotted, key, path, MEASURES[key], COLLAPSE_THRESHOLD if key == "diversity" else None,
                          title=f"{spec.title}: {key}\n{command}")
            lines += [f"### {key}", "", f"![{spec.title}: {key}]({path.name})", "",
                      figure_table(spec, groups, key), "", f"Made by `{command}`.", ""]
        lines += ["### Endpoints", "", endpoints_table(spec, groups), ""]
        if spec.null_check:
            lines += [null_check_text(spec, groups), ""]
    write_text(out / "figures.md", "\n".join(lines))
    return out / "figures.md"
