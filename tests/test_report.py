"""Reports from small hand-written run directories: exact tables, valid PNGs, incomplete runs, seed groups."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import is_color_like
from matplotlib.image import imread

from scl_hf import cycles, runs
from scl_hf.cli import main
from scl_hf.config import REPLICATE_KEYS, build_config, save_config
from scl_hf.errors import RunDirError
from scl_hf.report import (
    DISTRIBUTION_FIGURE,
    DIVERSITY_MEASURES_FIGURE,
    LIKELIHOOD_FIGURE,
    LOSS_FIGURE,
    REJECT_COLORS,
    diversity_band,
    loss_curves,
    top_samples_table,
    write_comparison_report,
    write_run_report,
)
from scl_hf.rundir import TRAIN_HISTORY
from scl_hf.runs import (
    check_history,
    group_runs,
    load_run,
    reference_band,
    summarize,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(gen, true, false, diversity, num_unique, *, num_samples=100, best_val_loss=0.5, curation=None, **extra):
    """A metrics.json as the loop writes it (contract schema), with the rates that matter set by hand."""
    return {
        "generation": gen,
        "metrics": {"num_samples": num_samples, "syntax_error_rate": round(1.0 - true - false, 10),
                    "false_rate": false, "true_rate": true, "diversity": diversity, "num_unique": num_unique,
                    "unique_rate": num_unique / num_samples, "mean_length": 12.345, "max_length": 40,
                    "mean_depth": 3.5, **extra},
        "train": {"best_val_loss": best_val_loss, "best_step": 40, "steps": 50, "final_train_loss": 0.6,
                  "train_tokens": 20000, "seconds": 3.25},
        "sampling": {"num_samples": num_samples, "num_truncated": 2, "seconds": 1.5},
        "data": {"num_rows": 100, "origin_counts": {"real": 50, "synthetic": 50, "fresh": 0}, "curation": curation},
    }


def make_run(root: Path, name: str, records: list[dict], unfinished: tuple[int, ...] = (), **config) -> Path:
    """A run directory: config.yaml via save_config, gen_XX/metrics.json per record, bare folders for unfinished."""
    cfg = build_config({"run_name": name, "output_dir": str(root), "num_generations": 5, **config})
    run_dir = root / name
    run_dir.mkdir(parents=True)
    save_config(cfg, run_dir / "config.yaml")
    for rec in records:
        gen_dir = run_dir / f"gen_{rec['generation']:02d}"
        gen_dir.mkdir()
        (gen_dir / "metrics.json").write_text(json.dumps(rec))
    for gen in unfinished:
        (run_dir / f"gen_{gen:02d}" / "model").mkdir(parents=True)  # started, metrics.json not written yet
    return run_dir


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    height, width = image.shape[:2]
    assert 300 <= height <= 2000 and 500 <= width <= 3000
    assert image.std() > 0.01  # something is drawn, not a blank canvas


THREE_GENS = [
    record(0, 0.8, 0.15, 0.42, 95, novelty_rate=0.9),
    record(1, 0.9, 0.08, 0.25, 70, novelty_rate=0.5, best_val_loss=0.4),
    record(2, 0.7, 0.2, 0.05, 30, novelty_rate=0.25, best_val_loss=0.3),
]


def test_run_report_tables_are_exact(tmp_path):
    run_dir = make_run(tmp_path, "inc", THREE_GENS, num_generations=3, cycle="incremental", synthetic_fraction=0.5)
    report = write_run_report(run_dir)
    assert report == run_dir / "report.md"
    text = report.read_text()
    assert text.startswith("# Run report: inc\n\n**incremental, λ=0.5, curation=none**\n")
    assert "Generations with metrics: 3 of 3, complete." in text
    assert "| 0.4200 | 0.0500 (gen 2) | 88.1% | 2 | 0.9000 (gen 1) |" in text  # summary: 0.42 -> 0.05, peak at 1
    assert "| 0 | 100 | 0.8000 | 0.1500 | 0.0500 | 0.4200 | 95 | 0.9500 | 0.9000 | 12.35 | 40 | 3.50 | 2 | 0.5000 |" \
        in text
    assert "| 1 | 100 | 0.9000 | 0.0800 | 0.0200 | 0.2500 | 70 | 0.7000 | 0.5000 | 12.35 | 40 | 3.50 | 2 | 0.4000 |" \
        in text
    assert "| 2 | 100 | 0.7000 | 0.2000 | 0.1000 | 0.0500 | 30 | 0.3000 | 0.2500 | 12.35 | 40 | 3.50 | 2 | 0.3000 |" \
        in text
    assert "| 2 | 100 | 50 | 50 | 0 | 50 | 40 | 0.6000 | 20000 | 3.2 | n/a | 1.5 |" in text  # training data, cost
    assert "cycle: incremental\nsynthetic_fraction: 0.5\n" in text  # the config, as YAML
    for name in ("correctness", "diversity", "unique"):
        assert f"![{name}" in text and f"]({name}.png)" in text  # relative links
        assert_png(run_dir / f"{name}.png")
    assert not (run_dir / "curation.png").exists() and "## Curation" not in text
    assert not (run_dir / LOSS_FIGURE).exists() and LOSS_FIGURE not in text  # no train_history.json: older runs
    assert not (run_dir / LIKELIHOOD_FIGURE).exists() and LIKELIHOOD_FIGURE not in text  # no eval block: older runs
    assert "| 0.5000 | n/a | n/a | n/a |" in text  # their likelihood columns say so


def test_likelihood_columns_and_figure(tmp_path):
    records = [record(g, 0.8, 0.1, 0.4, 90) for g in range(3)]
    for g, rec in enumerate(records):
        if g:  # generation 0 of an older run: no eval block, drawn as a gap
            rec["eval"] = {"heldout_nll": 0.30 + 0.05 * g, "samples_nll_m0": 0.35 + 0.15 * g,
                           "samples_nll": 0.3 - 0.02 * g}
    run_dir = make_run(tmp_path, "nll", records, num_generations=3)
    text = write_run_report(run_dir).read_text()
    assert f"![likelihoods per generation]({LIKELIHOOD_FIGURE})" in text
    assert_png(run_dir / LIKELIHOOD_FIGURE)
    assert "| 0.5000 | 0.4000 | 0.6500 | 0.2600 |" in text  # generation 2: held-out, under M_0, under M_2
    assert "| 0.5000 | n/a | n/a | n/a |" in text


DISTRIBUTION_KEYS = ("jsd_depth", "jsd_length", "jsd_not", "jsd_and", "jsd_or", "tail_coverage_depth",
                     "tail_coverage_length")
DIVERSITY_KEYS = ("distinct_1", "distinct_2", "distinct_3", "distinct_4", "compression_ratio", "canonical_unique_rate",
                  "shape_unique_rate")


def measured(gen: int, top: list | None = None, reference: bool = True) -> dict:
    """A record with the distribution and diversity measures (value = position / 100 + generation / 10) and,
    when ``reference``, the reference block (value = position / 1000)."""
    keys = DISTRIBUTION_KEYS + DIVERSITY_KEYS
    rec = record(gen, 0.8, 0.1, 0.4, 90, **{k: (i + 1) / 100 + gen / 10 for i, k in enumerate(keys)})
    if top is not None:
        rec["metrics"]["top_samples"] = top
    if reference:
        rec["reference"] = {"diversity": 0.45, "unique_rate": 1.0,
                            **{k: (i + 1) / 1000 for i, k in enumerate(keys)}}
    return rec


def test_distribution_and_diversity_measures_beside_their_reference(tmp_path):
    tops = [[["True", 40], ["not False", 9]], [["True", 70]], [["True", 80]], [["True", 90], ["True or", 5]]]
    records = [measured(g, tops[g]) for g in range(4)]
    records[1]["reference"] = None  # a generation without reference values: the bare value, no parentheses
    run_dir = make_run(tmp_path, "m", records, num_generations=4)
    text = write_run_report(run_dir).read_text()
    found = tables(text)
    distance = found["Distance from the real distribution"]
    assert distance[0] == ["generation", *DISTRIBUTION_KEYS]
    assert distance[3] == ["2", "0.2100 (0.0010)", "0.2200 (0.0020)", "0.2300 (0.0030)", "0.2400 (0.0040)",
                           "0.2500 (0.0050)", "0.2600 (0.0060)", "0.2700 (0.0070)"]
    assert distance[2][:2] == ["1", "0.1100"]
    diversity = found["Diversity measures"]
    assert diversity[0] == ["generation", "diversity", "unique_rate", *DIVERSITY_KEYS]
    assert diversity[1][:4] == ["0", "0.4000 (0.4500)", "0.9000 (1.0000)", "0.0800 (0.0080)"]
    # the first, middle (4 // 2 = 2) and last generation, each sample with its count
    assert found["Most frequent samples"] == [
        ["rank", "gen 0 (of 100)", "gen 2 (of 100)", "gen 3 (of 100)"],
        ["1", "`True` × 40", "`True` × 80", "`True` × 90"],
        ["2", "`not False` × 9", "", "`True or` × 5"]]
    for name in (DISTRIBUTION_FIGURE, DIVERSITY_MEASURES_FIGURE, "diversity.png"):
        assert f"]({name})" in text
        assert_png(run_dir / name)


def test_runs_without_the_measures_still_report(tmp_path):
    run_dir = make_run(tmp_path, "old", THREE_GENS, num_generations=3)
    text = write_run_report(run_dir).read_text()
    found = tables(text)
    assert found["Distance from the real distribution"][1] == ["0"] + ["n/a"] * len(DISTRIBUTION_KEYS)
    assert found["Diversity measures"][1] == ["0", "0.4200", "0.9500"] + ["n/a"] * len(DIVERSITY_KEYS)
    assert "Most frequent samples" not in found
    assert not (run_dir / DISTRIBUTION_FIGURE).exists() and DISTRIBUTION_FIGURE not in text
    assert not (run_dir / DIVERSITY_MEASURES_FIGURE).exists()
    assert top_samples_table(THREE_GENS) is None


def test_top_samples_cells_are_safe_markdown():
    long = "not " * 30 + "True"
    gens = [{"generation": 0, "metrics": {"num_samples": 5, "top_samples": [
        ["a|b", 2], ["x`y", 1], ["", 1], [long, 1], ["two\nlines", 1]]}}]
    table = top_samples_table(gens)
    assert table.splitlines()[0] == "| rank | gen 0 (of 5) |"  # one generation: first = middle = last
    cells = [line.split(" | ", 1)[1] for line in table.splitlines()[2:]]
    assert cells == ["`a\\|b` × 2 |", "`x'y` × 1 |", "(empty) × 1 |", f"`{long[:60]}…` × 1 |", "`two lines` × 1 |"]
    odd = top_samples_table([{"generation": 0, "metrics": {"top_samples": [["True", 3], "garbage", [1, 2, 3]]}}])
    assert odd.splitlines()[2:] == ["| 1 | `True` × 3 |", "| 2 | n/a |", "| 3 | n/a |"]


def test_threshold_and_missing_novelty(tmp_path):
    recs = [record(0, 0.5, 0.5, 0.3, 50), record(1, 0.5, 0.5, 0.2, 50)]  # no novelty_rate: no references given
    run_dir = make_run(tmp_path, "full", recs)
    text = write_run_report(run_dir, threshold=0.25).read_text()
    assert "| diversity at gen 0 | diversity at last gen | relative decline | first gen below 0.25 |" in text
    assert "| 0.3000 | 0.2000 (gen 1) | 33.3% | 1 | 0.5000 (gen 0) |" in text  # ties: the first peak
    assert "| 1 | 100 | 0.5000 | 0.5000 | 0.0000 | 0.2000 | 50 | 0.5000 | n/a |" in text
    assert "**full_synthetic, curation=none**" in text  # no λ for a cycle that does not use it
    text = write_run_report(run_dir).read_text()
    assert "| 0.3000 | 0.2000 (gen 1) | 33.3% | never | 0.5000 (gen 0) |" in text


def test_curation_figure_and_table(tmp_path):
    kept = {"steps": ["verified", "dedup"], "input": 120, "kept": 70,
            "rejected": {"syntax_error": 5, "false": 25, "duplicate": 20, "quota": 0}, "extra_samples": 20,
            "shortfall": 30}
    recs = [record(0, 0.8, 0.1, 0.4, 90), record(1, 0.95, 0.05, 0.3, 80, curation=kept)]
    run_dir = make_run(tmp_path, "exp", recs, cycle="expanding", synthetic_fraction=0.5, fresh_fraction=0.5,
                       curation="verified+dedup")
    text = write_run_report(run_dir).read_text()
    assert "**expanding, fresh=0.5, curation=verified+dedup**" in text
    older = ("| 1 | verified+dedup | 120 | 70 | 5 | 25 | 20 | 0 | n/a | n/a | 20 | 30 | n/a | n/a | n/a | n/a | n/a "
             "| n/a | n/a |")
    assert older in text  # a record from before the cost, verifier and selection keys
    assert "compute.png" not in text  # nothing says what the samples cost
    kept.update(verifier_calls=115, wrong_verdicts={"accepted": 4, "rejected": 7}, samples_drawn=140,
                samples_per_kept_row=2.0, corrections={"made": 12, "edits": {"0": 1, "1": 9, "2": 3}})
    kept["rejected"]["uncorrectable"] = 6
    (run_dir / "gen_01" / "metrics.json").write_text(json.dumps(recs[1]))
    text = write_run_report(run_dir).read_text()
    assert "| 1 | verified+dedup | 120 | 70 | 5 | 25 | 20 | 0 | 6 | n/a | 20 | 30 | 140 | n/a | 2.00 | 12 | 115 | 4 " \
        "| 7 |" in text
    assert "| 0.3000 | 80 |" in text and text.count("| 2.00 |") == 2  # also on the per-generation table
    assert "| 0 | verified" not in text  # generation 0 is built from D0 only
    assert "](curation.png)" in text and "](compute.png)" in text
    assert_png(run_dir / "curation.png")
    assert_png(run_dir / "compute.png")
    # a selecting generation: its pool, and the rows the selection left out
    kept.update(kept=35, selection={"select": "novelty", "selection_pool": 2, "pool_size": 70})
    kept["rejected"]["not_selected"] = 35
    (run_dir / "gen_01" / "metrics.json").write_text(json.dumps(recs[1]))
    text = write_run_report(run_dir).read_text()
    assert "| 1 | verified+dedup | 120 | 35 | 5 | 25 | 20 | 0 | 6 | 35 | 20 | 30 | 140 | 70 | 2.00 |" in text


def test_diversity_stderr_band(tmp_path):
    """The band drawn around a diversity estimated from sampled pairs is mean +- 1.96 standard errors; none where
    every generation's diversity is exact."""
    recs = [record(0, 0.8, 0.1, 0.4, 90, diversity_stderr=0.01), record(1, 0.8, 0.1, 0.3, 90)]
    run_dir = make_run(tmp_path, "pairs", recs)
    low, high = diversity_band(load_run(run_dir))
    np.testing.assert_allclose(low, [0.4 - 0.0196, np.nan])
    np.testing.assert_allclose(high, [0.4 + 0.0196, np.nan])
    assert diversity_band(load_run(make_run(tmp_path, "exact", THREE_GENS))) is None
    write_run_report(run_dir)
    assert_png(run_dir / "diversity.png")


def test_incomplete_and_running_runs(tmp_path):
    run_dir = make_run(tmp_path, "running", THREE_GENS[:2], unfinished=(2,))
    (run_dir / "gen_03").mkdir()
    (run_dir / "gen_03" / "metrics.json").write_text("{not json")
    (run_dir / "notes").mkdir()  # not a generation folder: ignored
    run = load_run(run_dir)
    assert run.generation_numbers == [0, 1]
    text = write_run_report(run_dir).read_text()
    assert "Generations with metrics: 2 of 5, incomplete (running or interrupted)." in text
    assert "- skipped gen_02: no metrics.json yet (generation running or interrupted)" in text
    assert "- skipped gen_03: metrics.json unreadable" in text
    assert "| 0.4200 | 0.2500 (gen 1) | 40.5% | never | 0.9000 (gen 1) |" in text
    assert_png(run_dir / "correctness.png")

    fresh = make_run(tmp_path, "just_started", [], unfinished=(0,))
    text = write_run_report(fresh).read_text()
    assert "Generations with metrics: 0 of 5" in text and "No generation is complete yet" in text
    assert "- skipped gen_00: no metrics.json yet" in text
    assert "```yaml\n# --- model ---\n" in text
    assert not list(fresh.glob("*.png"))


def test_not_a_run_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match=r"empty is not a run directory: it has no config.yaml"):
        write_run_report(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"missing is not a run directory: it does not exist"):
        write_run_report(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.yaml").write_text("cycle: sideways\n")
    with pytest.raises(RunDirError, match=r"bad is not a run directory: config.yaml is not a valid .*cycle must be"):
        write_run_report(tmp_path / "bad")
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert not (tmp_path / "empty" / "report.md").exists()


def test_summarize():
    s = summarize([0, 1, 2, 3], [0.5, None, 0.2, 0.04], [0.1, 0.3, 0.3, 0.2], threshold=0.2)
    assert s["diversity_first"] == 0.5 and s["diversity_last"] == 0.04 and s["last_generation"] == 3
    assert s["relative_decline"] == pytest.approx(0.92)
    assert s["below_threshold"] == 3  # 0.2 is not below 0.2
    assert (s["true_rate_peak"], s["true_rate_peak_generation"]) == (0.3, 1)
    assert summarize([0], [0.0], [0.5])["relative_decline"] is None  # no decline from zero diversity



def seeds_and_variants(root: Path) -> list[Path]:
    """Three seeds of incremental λ=0.5 (one still running), one λ=0.9 run, one curated run."""
    dirs = []
    for i, (divs, trues) in enumerate([([0.5, 0.4, 0.3], [0.7, 0.9, 0.9]), ([0.6, 0.5, 0.35], [0.8, 0.9, 0.6]),
                                       ([0.7, 0.3], [0.9, 0.9])]):
        recs = [record(g, t, 0.0, d, 50) for g, (d, t) in enumerate(zip(divs, trues, strict=True))]
        dirs.append(make_run(root, f"inc05_s{i}", recs, cycle="incremental", synthetic_fraction=0.5, seed=i,
                             data_seed=10 + i, hub_model_id=f"me/run{i}"))
    recs = [record(g, 0.5, 0.5, d, 50) for g, d in enumerate([0.4, 0.08, 0.02])]
    dirs.append(make_run(root, "inc09", recs, cycle="incremental", synthetic_fraction=0.9))
    recs = [record(g, 1.0, 0.0, d, 50) for g, d in enumerate([0.4, 0.35])]
    dirs.append(make_run(root, "inc05_verified", recs, cycle="incremental", synthetic_fraction=0.5,
                         curation="verified"))
    return dirs


def test_seed_grouping_exact_means(tmp_path):
    groups = group_runs([load_run(d) for d in seeds_and_variants(tmp_path / "runs")])
    assert [g.label for g in groups] == ["incremental, λ=0.5, curation=none", "incremental, λ=0.9, curation=none",
                                         "incremental, λ=0.5, curation=verified"]
    seeds = groups[0]
    assert [r.name for r in seeds.runs] == ["inc05_s0", "inc05_s1", "inc05_s2"]
    assert seeds.generations == [0, 1]  # the generations every seed completed
    assert seeds.curves["diversity"]["mean"] == pytest.approx([0.6, 0.4])
    assert seeds.curves["true_rate"]["mean"] == pytest.approx([0.8, 0.9])
    curve = seeds.curves["diversity"]
    for low, mean, high in zip(curve["low"], curve["mean"], curve["high"], strict=True):
        assert low < mean < high
    assert seeds.curves["true_rate"]["low"][1] == seeds.curves["true_rate"]["high"][1] == pytest.approx(0.9)
    assert seeds.curves["diversity"]["low"][0] == pytest.approx(0.6 - 4.302652729749464 * 0.1 / np.sqrt(3))  # t
    single = groups[1]  # one seed: its values, and no interval
    assert single.curves["diversity"]["mean"] == pytest.approx([0.4, 0.08, 0.02])
    assert np.isnan(single.curves["diversity"]["low"]).all() and np.isnan(single.curves["diversity"]["high"]).all()


def test_comparison_report(tmp_path):
    out = tmp_path / "cmp"
    dirs = seeds_and_variants(tmp_path / "runs")
    write_run_report(dirs[0])  # a run with its own report gets a link
    report = write_comparison_report(dirs, out, threshold=0.1)
    assert report == out / "comparison.md"
    text = report.read_text()
    assert "| incremental, λ=0.5, curation=none | 3 | 0..1 | 0.6000 | 0.4000 (gen 1) | 33.3% | never | " \
           "0.9000 (gen 1) |" in text
    assert "| incremental, λ=0.9, curation=none | 1 | 0..2 | 0.4000 | 0.0200 (gen 2) | 95.0% | 1 | 0.5000 (gen 0) |" \
        in text
    assert "| incremental, λ=0.5, curation=verified | 1 | 0..1 | 0.4000 | 0.3500 (gen 1) | 12.5% | never |" in text
    assert "| [inc05_s0](../runs/inc05_s0/report.md) | incremental, λ=0.5, curation=none | 10 | 0 | 3 of 5 |" in text
    assert "| inc05_s2 | incremental, λ=0.5, curation=none | 12 | 2 | 2 of 5 |" in text
    for name in ("comparison_diversity", "comparison_true_rate"):
        assert f"]({name}.png)" in text
        assert_png(out / f"{name}.png")
    assert "differ only in " + ", ".join(sorted(REPLICATE_KEYS)) + " are one group" in text
    assert not (out / "comparison_heldout_nll.png").exists() and "heldout_nll" not in text  # no run has it


def test_comparison_overlays_the_heldout_likelihood(tmp_path):
    dirs = []
    for seed, nlls in enumerate([[0.30, 0.34], [0.32, 0.40]]):
        recs = [record(g, 0.8, 0.1, 0.4, 50) for g in range(2)]
        for rec, nll in zip(recs, nlls, strict=True):
            rec["eval"] = {"heldout_nll": nll, "samples_nll_m0": 0.5, "samples_nll": 0.2}
        dirs.append(make_run(tmp_path / "runs", f"s{seed}", recs, seed=seed))
    [group] = group_runs([load_run(d) for d in dirs])
    assert group.curves["heldout_nll"]["mean"] == pytest.approx([0.31, 0.37])
    text = write_comparison_report(dirs, tmp_path / "cmp").read_text()
    assert "](comparison_heldout_nll.png)" in text
    assert_png(tmp_path / "cmp" / "comparison_heldout_nll.png")


def test_comparison_draws_the_reference_band_behind_the_new_curves(tmp_path):
    dirs = []
    for seed in range(2):
        recs = [measured(g) for g in range(3)]
        for g, rec in enumerate(recs):
            rec["reference"]["jsd_depth"] = 0.01 * (seed + 1) + 0.001 * g  # runs differ only in their reference
        dirs.append(make_run(tmp_path / "runs", f"s{seed}", recs, seed=seed))
    dirs.append(make_run(tmp_path / "runs", "old", THREE_GENS, cycle="balanced"))  # no measures, no reference
    groups = group_runs([load_run(d) for d in dirs])
    gens, low, high = reference_band(groups, "jsd_depth")
    assert gens.tolist() == [0, 1, 2]
    assert low == pytest.approx([0.01, 0.011, 0.012]) and high == pytest.approx([0.02, 0.021, 0.022])
    assert reference_band(groups, "heldout_nll") is None  # likelihoods have no reference sample
    assert groups[0].curves["jsd_depth"]["mean"] == pytest.approx([0.01, 0.11, 0.21])
    text = write_comparison_report(dirs, tmp_path / "cmp").read_text()
    for key in DISTRIBUTION_KEYS + ("compression_ratio", "canonical_unique_rate", "shape_unique_rate"):
        assert f"](comparison_{key}.png)" in text
        assert_png(tmp_path / "cmp" / f"comparison_{key}.png")


def test_an_imperfect_verifier_is_named_in_the_label(tmp_path):
    run = make_run(tmp_path, "noisy", [record(0, 0.5, 0.5, 0.4, 50)], curation="verified", verifier_error=0.1)
    assert "**full_synthetic, curation=verified, verifier_error=0.1**" in write_run_report(run).read_text()


def test_twin_labels_name_the_difference(tmp_path):
    a = make_run(tmp_path, "a", [record(0, 0.5, 0.5, 0.4, 50)], learning_rate=1.0e-3)
    b = make_run(tmp_path, "b", [record(0, 0.5, 0.5, 0.3, 50)], learning_rate=2.0e-3)
    labels = [g.label for g in group_runs([load_run(a), load_run(b)])]
    assert labels == ["full_synthetic, curation=none, learning_rate=0.001",
                      "full_synthetic, curation=none, learning_rate=0.002"]


def test_cli_report(tmp_path, capsys):
    dirs = seeds_and_variants(tmp_path / "runs")
    assert main(["report", str(dirs[3])]) == 0
    assert capsys.readouterr().out.strip() == str(dirs[3] / "report.md")
    assert "| 0.4000 | 0.0200 (gen 2) | 95.0% | 1 |" in (dirs[3] / "report.md").read_text()
    assert main(["report", *map(str, dirs), "--output", str(tmp_path / "cmp"), "--threshold", "0.5"]) == 0
    assert "first gen below 0.5" in (tmp_path / "cmp" / "comparison.md").read_text()
    assert main(["report", str(dirs[0]), str(dirs[1])]) == 2
    assert "--output DIR is required" in capsys.readouterr().err
    assert main(["report", str(dirs[0]), "--threshold", "2"]) == 2
    assert "--threshold must be in [0, 1]" in capsys.readouterr().err


def test_report_is_deterministic(tmp_path):
    run_dir = make_run(tmp_path, "det", THREE_GENS)
    first, first_png = write_run_report(run_dir).read_text(), imread(run_dir / "diversity.png")
    assert write_run_report(run_dir).read_text() == first  # no timestamps: reports diff cleanly
    assert np.array_equal(imread(run_dir / "diversity.png"), first_png)
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # written atomically, no temporaries


@pytest.mark.slow
def test_report_of_a_real_smoke_run(tmp_path):
    """A two-generation loop with curation on a tiny model: the loop writes the report, from its own files."""
    from scl_hf.config import parse_config
    from scl_hf.loop import run_loop

    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    cfg = parse_config(["--config", str(smoke), "--publish", "false", "--output_dir", str(tmp_path), "--run_name",
                        "tiny", "--dataset_size", "40", "--num_samples", "40", "--per_device_sample_batch_size", "40",
                        "--max_steps", "8", "--eval_steps", "4", "--warmup_steps", "2",
                        "--per_device_train_batch_size", "4", "--num_generations", "2", "--max_new_tokens", "60",
                        "--cycle", "incremental", "--synthetic_fraction", "0.5", "--curation", "syntactic",
                        "--resample_budget", "1.0"])
    run_dir = run_loop(cfg)
    text = (run_dir / "report.md").read_text()  # written by the loop after each generation
    assert "**incremental, λ=0.5, curation=syntactic**" in text
    assert "Generations with metrics: 2 of 2, complete." in text
    for gen in (0, 1):
        m = json.loads((run_dir / f"gen_{gen:02d}" / "metrics.json").read_text())["metrics"]
        row = (f"| {gen} | 40 | {m['true_rate']:.4f} | {m['false_rate']:.4f} | {m['syntax_error_rate']:.4f} | "
               f"{m['diversity']:.4f} | {m['num_unique']} |")
        assert row in text
    c = json.loads((run_dir / "gen_01" / "metrics.json").read_text())["data"]["curation"]
    assert f"| 1 | syntactic | {c['input']} | {c['kept']} | {c['rejected']['syntax_error']} | 0 | 0 | 0 |" in text
    for name in ("correctness", "diversity", "unique", "curation", "likelihood", "distribution",
                 "diversity_measures"):
        assert_png(run_dir / f"{name}.png")
    assert "## Most frequent samples" in text and "(0.0" in text  # the mode, and reference values in the tables
    assert f"]({LOSS_FIGURE})" in text  # the loop saved each generation's train_history.json
    assert f"]({LIKELIHOOD_FIGURE})" in text  # and its likelihoods
    assert_png(run_dir / LIKELIHOOD_FIGURE)
    assert sorted(load_run(run_dir).histories) == [0, 1]
    assert_png(run_dir / LOSS_FIGURE)
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").read_text() == text  # the same files give the same report


# --- training curves ---------------------------------------------------------------------------------


def history(train: list[tuple[int, float]], val: list[tuple[int, float]]) -> list[dict]:
    """A train_history.json as the loop writes it: loss windows and validations, in step order."""
    records = [{"step": s, "loss": v, "lr": 1.0e-3, "tokens_per_second": 1000.0} for s, v in train]
    records += [{"step": s, "val_loss": v} for s, v in val]
    return sorted(records, key=lambda r: r["step"])  # stable: a validation follows the window of its step


def write_history(run_dir: Path, gen: int, payload) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    (run_dir / f"gen_{gen:02d}" / TRAIN_HISTORY).write_text(text)


def test_loss_figure_from_histories(tmp_path):
    run_dir = make_run(tmp_path, "curves", THREE_GENS, num_generations=3, max_steps=50, eval_steps=50,
                       logging_steps=25)
    write_history(run_dir, 0, history([(25, 3.0), (50, 2.0)], [(50, 2.2)]))
    write_history(run_dir, 2, history([(25, float("nan")), (50, 1.5)], [(50, 1.6)]))  # NaN: written as NaN
    # gen_01 has none (an older loop): it is left out of the figure, and not named as skipped
    run = load_run(run_dir)
    assert sorted(run.histories) == [0, 2]
    curves = loss_curves(run)
    assert curves[0]["train_step"].tolist() == [25.0, 50.0] and curves[0]["train_loss"].tolist() == [3.0, 2.0]
    assert curves[2]["train_step"].tolist() == [125.0, 150.0]  # global step: 2 × max_steps + step
    assert np.isnan(curves[2]["train_loss"][0]) and curves[2]["train_loss"][1] == 1.5
    assert curves[2]["val_step"].tolist() == [150.0] and curves[2]["val_loss"].tolist() == [1.6]
    text = write_run_report(run_dir).read_text()
    assert f"![training and validation loss per generation]({LOSS_FIGURE})" in text
    assert "- skipped" not in text
    assert_png(run_dir / LOSS_FIGURE)
    first = imread(run_dir / LOSS_FIGURE)
    write_history(run_dir, 1, history([(25, 2.5), (50, 0.5)], [(50, 0.7)]))
    write_run_report(run_dir)
    assert not np.array_equal(imread(run_dir / LOSS_FIGURE), first)  # the figure draws the histories


def test_malformed_histories_are_skipped_with_a_note(tmp_path):
    run_dir = make_run(tmp_path, "bad_curves", THREE_GENS, num_generations=3, unfinished=(3,))
    write_history(run_dir, 0, "[{not json")
    write_history(run_dir, 1, {"step": 1, "loss": 2.0})  # a record, not a list of them
    write_history(run_dir, 2, [{"step": 50, "lr": 1.0e-3}])  # no loss
    (run_dir / "gen_03" / TRAIN_HISTORY).write_text(json.dumps(history([(1, 1.0)], [])))  # incomplete generation
    run = load_run(run_dir)
    assert run.histories == {} and run.generation_numbers == [0, 1, 2]  # the generations themselves stay
    text = write_run_report(run_dir).read_text()
    assert f"- skipped gen_00 loss curve: {TRAIN_HISTORY} unreadable (" in text
    assert f"- skipped gen_01 loss curve: {TRAIN_HISTORY} unreadable (not a list of step records but a dict)" in text
    assert f"- skipped gen_02 loss curve: {TRAIN_HISTORY} unreadable (record 0 (step 50) has neither" in text
    assert not (run_dir / LOSS_FIGURE).exists() and LOSS_FIGURE not in text
    assert "| 2 | 100 | 0.7000 |" in text  # the tables still have every complete generation

    write_history(run_dir, 2, history([(25, 2.0)], [(25, 2.1)]))
    text = write_run_report(run_dir).read_text()
    assert sorted(load_run(run_dir).histories) == [2] and f"]({LOSS_FIGURE})" in text
    assert_png(run_dir / LOSS_FIGURE)


def test_check_history():
    good = history([(50, 2.0), (100, 1.0)], [(100, 1.2)])
    assert check_history(good) is good and check_history([]) == []
    with pytest.raises(ValueError, match="not in step order"):
        check_history(list(reversed(good)))
    with pytest.raises(ValueError, match="record 0 has no integer 'step'"):
        check_history([{"step": True, "loss": 1.0}])
    with pytest.raises(ValueError, match="record 1 has no integer 'step'"):
        check_history([{"step": 1, "loss": 1.0}, {"step": 2.0, "loss": 1.0}])
    with pytest.raises(ValueError, match="neither a 'loss' nor a 'val_loss' number"):
        check_history([{"step": 1, "loss": "low"}])


# --- tables ------------------------------------------------------------------------------------------


def tables(text: str) -> dict[str, list[list[str]]]:
    """Every markdown table of a report, by the section it is in: rows of cells (header first, no rule row)."""
    found, section, current = {}, None, None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
        if line.startswith("|"):
            if current is None:
                current = found.setdefault(section, [])
            if not set(line) <= set("|-"):
                current.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        else:
            current = None
    return found


def curated_run(root: Path, rejected: dict) -> Path:
    kept = {"steps": ["verified", "dedup"], "input": 120, "kept": 70, "rejected": rejected, "extra_samples": 20,
            "shortfall": 30}
    recs = [record(0, 0.8, 0.1, 0.4, 90), record(1, 0.95, 0.05, 0.3, 80, curation=kept)]
    return make_run(root, "cur", recs, cycle="expanding", curation="verified+dedup")


def test_every_table_row_has_the_header_length(tmp_path):
    run_dir = curated_run(tmp_path, {"syntax_error": 5, "false": 25, "duplicate": 20, "quota": 0})
    found = tables(write_run_report(run_dir).read_text())
    assert set(found) == {"Summary", "Per generation", "Training data and cost", "Curation",
                          "Distance from the real distribution", "Diversity measures"}
    for section, rows in found.items():
        assert len(rows) >= 2, section
        assert {len(row) for row in rows} == {len(rows[0])}, section
    curation = found["Curation"]
    assert curation[0] == ["generation", "steps", "input", "kept", *(f"rejected: {r}" for r in cycles.REJECT_REASONS),
                           "extra_samples", "shortfall", "samples drawn", "selection pool", "drawn per kept row",
                           "corrected",
                           "verifier calls", "wrong verdicts: accepted", "wrong verdicts: rejected"]
    assert dict(zip(curation[0], curation[1], strict=True))["rejected: false"] == "25"

    dirs = seeds_and_variants(tmp_path / "runs")
    dirs.append(make_run(tmp_path / "runs", "odd|name", [record(0, 0.5, 0.5, 0.4, 50)], cycle="incremental",
                         synthetic_fraction=0.9))  # a '|' in a value is escaped, not a new cell
    found = tables(write_comparison_report(dirs, tmp_path / "cmp").read_text())
    assert set(found) == {"Summary", "Runs"}
    for section, rows in found.items():
        assert {len(row) for row in rows} == {len(rows[0])}, section
    assert ["odd|name", "incremental, λ=0.9, curation=none"] in [row[:2] for row in found["Runs"]]


def test_a_new_reject_reason_is_a_new_curation_column(tmp_path, monkeypatch):
    monkeypatch.setattr(cycles, "REJECT_REASONS", (*cycles.REJECT_REASONS, "too_long"))
    monkeypatch.setitem(REJECT_COLORS, "too_long", "#17becf")
    run_dir = curated_run(tmp_path, {"syntax_error": 5, "false": 25, "duplicate": 20, "quota": 0, "too_long": 7})
    text = write_run_report(run_dir).read_text()
    header, row = tables(text)["Curation"]
    assert header[-14:-7] == ["rejected: duplicate", "rejected: quota", "rejected: uncorrectable",
                              "rejected: not_selected", "rejected: too_long", "extra_samples", "shortfall"]
    assert row == ["1", "verified+dedup", "120", "70", "5", "25", "20", "0", "n/a", "n/a", "7", "20", "30",
                   *["n/a"] * 7]
    assert "| 1 | verified+dedup | 120 | 70 | 5 | 25 | 20 | 0 | n/a | n/a | 7 | 20 | 30 |" in text
    assert_png(run_dir / "curation.png")


def test_reject_colors_cover_reject_reasons():
    assert list(REJECT_COLORS) == list(cycles.REJECT_REASONS)  # the same reasons, in the curation table's order
    assert all(is_color_like(c) for c in REJECT_COLORS.values())
    assert len(set(REJECT_COLORS.values())) == len(REJECT_COLORS)  # every reason its own colour
    assert runs.REPLICATE_KEYS is REPLICATE_KEYS  # groups by the config's own replicate roles


def test_comparison_overlays_the_samples_drawn_per_kept_row(tmp_path):
    """The thesis is about spending compute: levers are compared by what a kept row cost, seeds grouped."""
    def cost(drawn):
        return {"steps": [], "input": drawn, "kept": 50, "rejected": {"not_selected": drawn - 50},
                "extra_samples": drawn - 100, "shortfall": 0, "samples_drawn": drawn,
                "samples_per_kept_row": drawn / 50,
                "selection": {"select": "random", "selection_pool": 2, "pool_size": drawn}}

    dirs = [make_run(tmp_path / "runs", f"s{seed}", [record(0, 0.8, 0.1, 0.4, 90),
                                                      record(1, 0.8, 0.1, 0.3, 90, curation=cost(200 + seed))],
                     cycle="balanced", select="random", selection_pool=2, seed=seed) for seed in (0, 1)]
    text = write_comparison_report(dirs, tmp_path / "cmp").read_text()
    assert "](comparison_samples_per_kept_row.png)" in text and "select=random of 2x" in text
    assert_png(tmp_path / "cmp" / "comparison_samples_per_kept_row.png")
    groups = runs.group_runs([runs.load_run(d) for d in dirs])
    assert len(groups) == 1  # the seeds are replicates of one experiment
    np.testing.assert_allclose(groups[0].per_run["samples_per_kept_row"], [[np.nan, 4.0], [np.nan, 4.02]])
