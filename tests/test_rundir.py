"""The run directory's names, completion, atomic writes, embedded store root and seeds."""

import json

import numpy as np
import pytest

from scl_hf import rundir
from scl_hf.rundir import (
    complete_generations,
    embedded_hub_root,
    gen_dir,
    generation_dirs,
    generation_of_dir,
    generation_of_tag,
    is_complete,
    seed_for,
    tag,
    write_atomically,
    write_json,
)


def test_names_round_trip():
    assert gen_dir("runs/x", 7).as_posix() == "runs/x/gen_07" and gen_dir("r", 123).name == "gen_123"
    assert tag(0) == "gen-00" and tag(7) == "gen-07" and tag(123) == "gen-123"
    for g in (0, 7, 99, 100, 1234):
        assert generation_of_dir(gen_dir("r", g).name) == g and generation_of_tag(tag(g)) == g
    for name in ("gen_7x", "gen-07", "xgen_07", "gen_", "config.yaml", ".tmp-gen_07"):
        assert generation_of_dir(name) is None
    assert generation_of_tag("gen_07") is None and generation_of_tag("main") is None


def test_complete_generations_are_those_with_metrics(tmp_path):
    for g in (0, 1, 2, 10):
        gen_dir(tmp_path, g).mkdir()
    (tmp_path / "gen_junk").mkdir()
    (tmp_path / "gen_05").write_text("a file, not a generation folder")
    for g in (0, 2, 10):
        write_json(gen_dir(tmp_path, g) / rundir.METRICS, {key: g if key == "generation" else {}
                                                            for key in rundir.METRICS_KEYS})
    assert [g for g, _ in generation_dirs(tmp_path)] == [0, 1, 2, 10]
    assert complete_generations(tmp_path) == [0, 2, 10]
    assert is_complete(tmp_path, 2) and not is_complete(tmp_path, 1) and not is_complete(tmp_path, 3)
    # damaged markers are not complete, and say why
    marker = gen_dir(tmp_path, 1) / rundir.METRICS
    for text, problem in (("", "unreadable"), ("[1]", "not a JSON object"), ('{"generation": 1}', "lacks metrics"),
                          ('{"generation": 2, "metrics": 0, "train": 0, "sampling": 0, "data": 0}',
                           "belongs to generation 2")):
        marker.write_text(text)
        assert rundir.marker_problem(tmp_path, 1).startswith(problem) and not is_complete(tmp_path, 1)
    assert rundir.marker_problem(tmp_path, 3) == "missing" and rundir.marker_problem(tmp_path, 2) is None
    assert generation_dirs(tmp_path / "missing") == []


def test_write_atomically_replaces_whole_and_cleans_leftovers(tmp_path):
    final = tmp_path / "stage"
    (tmp_path / ".tmp-stage").mkdir()  # a killed earlier write
    (tmp_path / ".tmp-stage" / "half").write_text("x")
    write_atomically(final, lambda tmp: (tmp.mkdir(), (tmp / "a").write_text("1")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"] and (final / "a").read_text() == "1"
    write_atomically(final, lambda tmp: (tmp.mkdir(), (tmp / "b").write_text("2")))  # a folder replaces a folder
    assert [p.name for p in final.iterdir()] == ["b"]

    def fail(tmp):
        tmp.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomically(tmp_path / "f.json", fail)
    assert not (tmp_path / "f.json").exists()
    write_json(tmp_path / "f.json", {"a": [1]})
    assert json.loads((tmp_path / "f.json").read_text()) == {"a": [1]} and rundir.read_json(tmp_path / "f.json")


def test_embedded_store_follows_the_run_folder(tmp_path):
    assert embedded_hub_root(tmp_path / "runs" / "smoke") == tmp_path / "runs" / "hub"
    assert embedded_hub_root(tmp_path / "runs" / "smoke", str(tmp_path / "store")) == tmp_path / "store"


def test_seeds_are_stable_independent_and_valid():
    assert seed_for(1337, "train", 0) == seed_for(1337, "train", 0)
    seeds = {seed_for(base, stage, g, r) for base in (0, 1, 1337) for stage in rundir.SEED_STAGES
             for g in range(20) for r in range(3)}
    assert len(seeds) == 3 * len(rundir.SEED_STAGES) * 20 * 3  # no two streams share a seed
    assert all(0 <= s < 2**31 for s in seeds)
    np.random.seed(max(seeds))  # numpy's legacy seeding (Accelerate's set_seed) accepts them
    # fixed values: a change here changes every run's random streams (and docs/RESULTS.md must be regenerated)
    assert [seed_for(0, "real", 0), seed_for(1337, "train", 3)] == [1484405855, 596693297]
    with pytest.raises(ValueError, match="stage must be one of"):
        seed_for(0, "nope", 0)
    with pytest.raises(ValueError, match=">= 0"):
        seed_for(-1, "train", 0)


# The damages test_loop.py's test_a_damaged_completion_marker_is_measured_again gives the loop (which measures such
# a generation again), plus a marker that names another generation and one whose metrics block is not an object.
DAMAGES = ["", '{"generation": 1, "metrics": {', '{"generation": 1}', "[]",
           '{"generation": 2, "metrics": {}, "train": {}, "sampling": {}, "data": {}}',
           '{"generation": 1, "metrics": 0, "train": {}, "sampling": {}, "data": {}}']


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_marker_means_not_complete_to_the_sweep_the_reports_and_publishing(tmp_path, damage):
    """One rule (rundir.marker_problem) for "generation t is complete": the loop redoes such a generation, and
    the sweep's status and skip logic, the run reader of the reports and publishing all see it as not complete."""
    from scl_hf.config import save_config
    from scl_hf.errors import RunDirError
    from scl_hf.hub.publish import read_metrics
    from scl_hf.runs import load_run
    from scl_hf.sweep import generations_done, load_sweep, status

    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_size: 20\nnum_generations: 2\nmax_depth: 4\n")
    (tmp_path / "s.yaml").write_text("recipes: [r.yaml]\nseeds: [0]\n")
    sweep = load_sweep(tmp_path / "s.yaml", tmp_path / "out")
    [run] = sweep.runs
    run_dir = run.config.run_dir
    run_dir.mkdir(parents=True)
    save_config(run.config, run_dir / rundir.CONFIG)
    for g in (0, 1):
        write_json(gen_dir(run_dir, g) / rundir.METRICS, {"generation": g, "metrics": {"true_rate": 0.5},
                                                         "train": {}, "sampling": {}, "data": {}})
    assert generations_done(run) == 2 and [g["generation"] for g in load_run(run_dir).generations] == [0, 1]
    (gen_dir(run_dir, 1) / rundir.METRICS).write_text(damage)
    problem = rundir.marker_problem(run_dir, 1)
    assert problem not in (None, "missing")
    assert generations_done(run) == 1 and status(sweep)[0][2] == 1  # status, and the skip logic that counts it
    loaded = load_run(run_dir)
    assert [g["generation"] for g in loaded.generations] == [0]
    assert loaded.skipped == [f"gen_01: metrics.json {problem}"]
    with pytest.raises(RunDirError, match="generation 1 .* is not complete"):
        read_metrics(run_dir, 1)
    assert read_metrics(run_dir, 0)["generation"] == 0
