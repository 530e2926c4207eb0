"""A sweep's figures for questions: refused specs, tables with intervals and differences, partial sweeps."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scl_hf.config import ConfigError, save_config
from scl_hf.errors import SclHfError
from scl_hf.figures import FigureSpec, figure_groups, figure_table, parse_figures
from scl_hf.report import bootstrap_difference, bootstrap_interval
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
                      "reference": {"diversity": 0.62, "true_rate": 1.0}}
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
    assert table[0] == "| configuration | runs | gen 0 | gen 2 | seeds at gen 2 | minus low at gen 2 |"
    low = np.array([0.30, 0.31, 0.32])
    lo, hi = bootstrap_interval(low)
    assert table[2] == f"| low | 3 | 0.510 [{lo + 0.2:.3f}, {hi + 0.2:.3f}] | 0.310 [{lo:.3f}, {hi:.3f}] | " \
                       "0.300, 0.310, 0.320 | baseline |"
    d, dlo, dhi = bootstrap_difference([0.40, 0.41], low)
    assert d == pytest.approx(0.095) and dlo < d < dhi
    assert table[3].startswith("| high | 2 | 0.605 [") and table[3].endswith(
        f"| 0.400, 0.410 | {d:+.3f} [{dlo:+.3f}, {dhi:+.3f}] |")
    assert table[4] == "| real sample of the same size |  | 0.620 [0.620, 0.620] | 0.620 [0.620, 0.620] |  |  |"
    # without generations: the first and the last
    plain = FigureSpec("p", "P", ("low",), ("diversity",))
    assert figure_table(plain, figure_groups(plain, runs), "diversity").splitlines()[0] == \
        "| configuration | runs | gen 0 | gen 2 | seeds at gen 2 |"
    # one run: its value alone, no interval; its difference to the baseline still has the baseline's spread
    one = figure_table(spec, figure_groups(spec, [run for run in runs if run.name != "high-seed1"]), "diversity")
    d, dlo, dhi = bootstrap_difference([0.40], low)
    assert one.splitlines()[3] == f"| high | 1 | 0.600 | 0.400 | 0.400 | {d:+.3f} [{dlo:+.3f}, {dhi:+.3f}] |"


def test_bootstrap_difference_is_a_point_for_single_runs_and_covers_a_shift():
    assert bootstrap_difference([0.3], [0.1]) == pytest.approx((0.2, 0.2, 0.2))
    d, low, high = bootstrap_difference([1.0, 1.1, 1.2, 0.9], [0.0, 0.1, -0.1, 0.2])
    assert d == pytest.approx(1.0) and 0.8 < low < 1.0 < high < 1.2
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_difference([], [1.0])


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
