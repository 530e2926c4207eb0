"""A sweep's figures for questions: refused specs, tables with intervals and differences, partial sweeps."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scl_hf.config import ConfigError, save_config
from scl_hf.errors import SclHfError
from scl_hf.figures import (
    FigureSpec,
    endpoints_table,
    figure_groups,
    figure_table,
    null_check_text,
    parse_figures,
)
from scl_hf.rundir import METRICS, gen_dir
from scl_hf.sweep import export_results, load_sweep, write_results

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
FIGURES = """figures:
  - name: cycles
    title: "Q: cycles"
    recipes: [low, high]
    measures: [diversity, true_rate]
    generations: [0, 2]
    baseline: low
"""


def fake_sweep(tmp_path: Path, figures: str = FIGURES):
    """A sweep of two recipes x 3 seeds x 3 generations whose metrics.json are written by hand: diversity of
    recipe ``low`` is 0.5 - 0.1 g + 0.01 seed, of ``high`` 0.1 more; true_rate 0.6 everywhere."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "low.yaml").write_text(f"base: {SMOKE}\nnum_generations: 3\npublish: false\n")
    (tmp_path / "recipes" / "high.yaml").write_text("base: low.yaml\ncycle: balanced\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(f"recipes: [recipes/low.yaml, recipes/high.yaml]\nseeds: [0, 1, 2]\n{figures}")
    sweep = load_sweep(path, tmp_path / "out")
    for run in sweep.runs:
        run.config.run_dir.mkdir(parents=True)
        save_config(run.config, run.config.run_dir / "config.yaml")
        seed = run.config.training.seed
        for g in range(3):
            if run.name == "high-seed2" and g == 2:
                continue  # one run interrupted: not complete, left out of the figures
            div = 0.5 - 0.1 * g + 0.01 * seed + (0.1 if run.recipe == "high" else 0.0)
            record = {"generation": g, "metrics": {"diversity": div, "true_rate": 0.6},
                      "reference": {"diversity": 0.62, "true_rate": 1.0}, "train": {}, "sampling": {}, "data": {}}
            folder = gen_dir(run.config.run_dir, g)
            folder.mkdir(parents=True)
            (folder / METRICS).write_text(json.dumps(record))
    return sweep


def test_the_tables_give_means_intervals_seeds_and_the_difference_to_the_baseline(tmp_path):
    sweep = fake_sweep(tmp_path)
    [spec] = sweep.figures
    runs = [run for run in sweep.runs if run.name != "high-seed2"]
    groups = figure_groups(spec, runs)
    assert [(recipe, group.label, len(group.runs)) for recipe, group in groups] == [("low", "low", 3),
                                                                                     ("high", "high", 2)]
    table = figure_table(spec, groups, "diversity").splitlines()
    assert table[0] == ("| configuration | runs | gen 0 | gen 2 | seeds at gen 2 | minus low at gen 2, paired by "
                        "seed |")
    half = 4.302652729749464 * 0.01 / np.sqrt(3)  # t_{0.975, 2} x s / sqrt(n), s = 0.01 over seeds 0, 1, 2
    assert table[2] == (f"| low | 3 | 0.510 [{0.51 - half:.3f}, {0.51 + half:.3f}] | 0.310 [{0.31 - half:.3f}, "
                        f"{0.31 + half:.3f}] | 0.300, 0.310, 0.320 | baseline |")
    # high has seeds 0 and 1, each 0.1 above low's: a zero-width interval, the paired t-test's p 0, sign-flip 2/4
    assert table[3].startswith("| high | 2 | 0.605 [") and table[3].endswith(
        "| 0.400, 0.410 | +0.100 [+0.100, +0.100], p = 0.000 (sign-flip 0.500, 2 pairs), clear |")
    assert table[4] == ("| real sample of the same size (reference) |  | 0.620 [0.620, 0.620] | 0.620 [0.620, 0.620] "
                        "|  |  |")
    # without generations: the first and the last
    plain = FigureSpec("p", "P", ("low",), ("diversity",))
    assert figure_table(plain, figure_groups(plain, runs), "diversity").splitlines()[0] == \
        "| configuration | runs | gen 0 | gen 2 | seeds at gen 2 |"
    # one run: its value alone, no interval, and no paired test with one common seed
    one = figure_table(spec, figure_groups(spec, [run for run in runs if run.name != "high-seed1"]), "diversity")
    assert one.splitlines()[3] == "| high | 1 | 0.600 | 0.400 | 0.400 | n/a (fewer than 2 common seeds) |"


def test_endpoints_and_the_null_check(tmp_path):
    """Per configuration: generations to collapse (none of these runs falls below 0.1 unique: censored at gen 2),
    the diversity curve's mean level and the held-out NLL (not measured here), paired against the baseline."""
    sweep = fake_sweep(tmp_path)
    spec = dataclasses.replace(sweep.figures[0], null_check=True)
    runs = [run for run in sweep.runs if run.name != "high-seed2"]
    groups = figure_groups(spec, runs)
    table = endpoints_table(spec, groups).splitlines()
    assert table[0] == ("| configuration | generations to collapse (unique_rate < 0.1) | log-rank vs baseline | "
                        "diversity, mean level over generations | minus baseline | held-out NLL at the last "
                        "generation | minus baseline |")
    # low's mean level: the mean of 0.5 - 0.1 g + 0.01 seed over g = 0..2 is 0.4 + 0.01 seed
    half = 4.302652729749464 * 0.01 / np.sqrt(3)
    assert table[2] == (f"| low | 0 of 3 collapsed; median not reached by gen 2 | baseline | "
                        f"0.410 [{0.41 - half:.3f}, {0.41 + half:.3f}] | baseline | n/a | baseline |")
    assert table[3] == ("| high | 0 of 2 collapsed; median not reached by gen 2 | p = 1.000 | 0.505 [0.441, 0.569] | "
                        "+0.100 [+0.100, +0.100], p = 0.000 (sign-flip 0.500, 2 pairs), clear | n/a | "
                        "n/a (fewer than 2 common seeds) |")
    text = null_check_text(spec, groups)
    # diversity differs at every generation (2 measured generations x the 2 measures these runs have: diversity
    # at gens 0, 1, 2 and true_rate, equal everywhere: no spread, no test)
    assert "Over 3 comparisons" in text and "it rejected 100.0% (3)" in text
    with pytest.raises(ConfigError, match="null_check must be true or false, and true only with a baseline"):
        parse_figures([{"name": "n", "title": "N", "recipes": ["low"], "measures": ["diversity"],
                        "null_check": True}], ["low", "high"])


def test_the_report_of_a_partial_sweep_uses_the_complete_runs_and_names_the_others(tmp_path, monkeypatch):
    sweep = fake_sweep(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "scl_hf.cli", "sweep", str(sweep.path), "--output_dir",
                           str(sweep.folder), "--report"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = sweep.folder
    md = (out / "figures" / "figures.md").read_text()
    assert "Made by `scl-hf sweep sweep.yaml` from 5 complete runs; not yet complete, so left out: high-seed2." in md
    assert "## Q: cycles" in md and "![Q: cycles: diversity](cycles_diversity.png)" in md
    assert (out / "figures" / "cycles_diversity.png").stat().st_size > 0
    assert (out / "figures" / "cycles_true_rate.png").stat().st_size > 0
    assert "high-seed2" not in (out / "results.csv").read_text()  # only complete runs' numbers
    assert "high-seed2" not in (out / "comparison" / "comparison.md").read_text()
    names = {p.relative_to(tmp_path / "docs").as_posix() for p in export_results(sweep, tmp_path / "docs")}
    assert {"figures/figures.md", "figures/cycles_diversity.png", "results.csv", "low-seed0/config.yaml"} <= names
    assert not [n for n in names if n.startswith("high-seed2/")]  # a partial run is not exported
    monkeypatch.chdir(tmp_path)
    write_results(sweep)  # the same runs give the same figures and tables
    assert (out / "figures" / "figures.md").read_text() == md


def test_a_sweep_with_no_complete_run_has_nothing_to_report(tmp_path):
    (tmp_path / "low.yaml").write_text(f"base: {SMOKE}\n")
    (tmp_path / "sweep.yaml").write_text("recipes: [low.yaml]\n")
    with pytest.raises(SclHfError, match="no run of sweep.yaml is complete yet"):
        write_results(load_sweep(tmp_path / "sweep.yaml", tmp_path / "out"))


@pytest.mark.parametrize(("figures", "message"), [
    ("figures: {name: x}\n", "figures must be a list of mappings"),
    ("figures:\n  - {name: a, title: t, recipes: [low], measures: [diversity], colour: red}\n",
     r"unknown key 'colour' in figures\[0\]; allowed keys: name, title"),
    ("figures:\n  - {name: a/b, title: t, recipes: [low], measures: [diversity]}\n", "name must be a file name"),
    ("figures:\n  - {name: a, title: t, recipes: [low], measures: [diversity]}\n"
     "  - {name: a, title: u, recipes: [low], measures: [diversity]}\n", r"figures\[1\]: name must be unique"),
    ("figures:\n  - {name: a, title: '', recipes: [low], measures: [diversity]}\n", "title must be a non-empty"),
    ("figures:\n  - {name: a, title: t, recipes: [medium], measures: [diversity]}\n",
     r"recipes must be a non-empty list of distinct recipe stems of the sweep \['low', 'high'\]"),
    ("figures:\n  - {name: a, title: t, recipes: [low], measures: [diversty]}\n",
     r"measures must be a non-empty list of \[.*'diversity'"),
    ("figures:\n  - {name: a, title: t, recipes: [low], measures: [diversity], generations: [-1]}\n",
     "generations must be a non-empty list of integers >= 0"),
    ("figures:\n  - {name: a, title: t, recipes: [low], measures: [diversity], baseline: high}\n",
     r"baseline must be one of the figure's recipes \['low'\]"),
])
def test_a_bad_figure_names_the_key(tmp_path, figures, message):
    with pytest.raises(ConfigError, match=message):
        fake_sweep(tmp_path, figures)


def test_figures_are_optional_and_parsed_in_order():
    assert parse_figures(None, ["a"]) == []
    assert parse_figures([{"name": "n", "title": " T ", "recipes": ["a"], "measures": ["unique_rate"]}], ["a"]) == [
        FigureSpec("n", "T", ("a",), ("unique_rate",))]
