"""Configuration: YAML then command line, strict keys, validation messages, lossless save/load."""

import subprocess
import sys
from pathlib import Path

import pytest

from scl_hf.config import (
    CYCLES,
    KEYS,
    REPLICATE_KEYS,
    RESUMABLE_KEYS,
    Config,
    ConfigError,
    build_config,
    diff_configs,
    is_repo_id,
    load_config,
    parse_config,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_paper_recipe():
    cfg = Config()
    assert (cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd, cfg.model.n_positions) == (6, 6, 384, 256)
    assert cfg.model.dropout == 0.2 and cfg.training.learning_rate == 1.0e-3
    assert cfg.sampling.temperature == 0.8 and cfg.loop.num_generations == 50
    # paper.yaml is the defaults written out, plus early stopping 4 validations after the best (its comment says why)
    assert load_config(CONFIGS / "paper.yaml").to_flat() == {**Config().to_flat(), "run_name": "paper_full_synthetic",
                                                             "early_stopping_patience": 4}


def test_yaml_then_command_line(tmp_path):
    recipe = tmp_path / "x.yaml"
    recipe.write_text("base: " + str(CONFIGS / "smoke.yaml") + "\nlearning_rate: 2.0e-3\nmax_steps: 7\n")
    cfg = parse_config(["--config", str(recipe), "--max_steps", "9", "--push_to_hub", "--curation", "verified+dedup"])
    assert cfg.training.learning_rate == 2.0e-3  # from x.yaml
    assert cfg.training.max_steps == 9  # the flag wins over the file
    assert cfg.model.n_embd == 96  # from the base file
    assert cfg.model.n_layer == 3 and cfg.data.dataset_size == 300
    assert cfg.hub.push_to_hub is True and cfg.cycle.curation_steps == ["verified", "dedup"]
    assert parse_config(["--push_to_hub", "false"]).hub.push_to_hub is False


def test_yaml_string_floats_and_nulls_are_converted(tmp_path):
    recipe = tmp_path / "x.yaml"
    recipe.write_text("learning_rate: 1e-3\nmax_new_tokens: null\nmax_steps: 1.0e+2\n")
    cfg = load_config(recipe)
    assert cfg.training.learning_rate == 0.001 and cfg.sampling.max_new_tokens is None
    assert cfg.training.max_steps == 100


def test_save_and_load_back_identically(tmp_path):
    cfg = parse_config(["--config", str(CONFIGS / "smoke.yaml"), "--max_new_tokens", "50", "--top_p", "0.9"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert "# --- training ---" in (tmp_path / "config.yaml").read_text()
    assert diff_configs(cfg, load_config(tmp_path / "config.yaml")) == []
    other = build_config({**cfg.to_flat(), "max_steps": 3})
    assert diff_configs(cfg, other) == [("max_steps", 300, 3)]
    assert cfg.hash() != other.hash() and len(cfg.hash()) == 12


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lerning_rate": 1.0}, "unknown key 'lerning_rate'.*did you mean learning_rate"),
        ({"dataset_size": -5}, "dataset_size must be an integer >= 1, got -5"),
        ({"num_samples": 0}, "num_samples must be an integer >= 1"),
        ({"synthetic_fraction": 1.5}, r"synthetic_fraction must be in \[0, 1\], got 1.5"),
        ({"fresh_fraction": -0.1}, r"fresh_fraction must be in \[0, 1\]"),
        ({"cycle": "accumulate", "fresh_fraction": 0.2}, "fresh_fraction must be 0 with cycle 'accumulate'"),
        ({"cycle": "circular"}, "cycle must be one of .*full_synthetic.*accumulate_subsample.*got 'circular'"),
        ({"curation": "best"}, "curation must be 'none' or names from"),
        ({"curation": "none+dedup"}, "curation must be 'none' or names from"),
        ({"n_embd": 100, "n_head": 6}, "n_embd must be a multiple of n_head=6, got 100"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"max_depth": 0}, "max_depth must be an integer >= min_depth=1"),
        ({"min_depth": 0}, "min_depth must be an integer >= 1"),
        ({"paren_prob": 2.0}, r"paren_prob must be in \[0, 1\]"),
        ({"learning_rate": 0.0}, "learning_rate must be a number > 0"),
        ({"min_learning_rate": 1.0}, r"min_learning_rate must be in \[0, learning_rate"),
        ({"warmup_steps": -1}, "warmup_steps must be an integer >= 0"),
        ({"max_steps": 2.5}, "max_steps must be an integer, got 2.5"),
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be an integer >= 1"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\)"),
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"init_from": "gpt2"}, "init_from must be one of .*scratch.*previous"),
        ({"report_to": "mlflow"}, "report_to must be one of"),
        ({"temperature": 0.0}, "temperature must be a number > 0"),
        ({"temperature": 1e-40}, r"temperature must be at least 1e-06 \(a smaller one divides the logits past"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"max_new_tokens": 300}, "max_new_tokens must be null or at most n_positions - 1 = 255"),
        ({"num_generations": 0}, "num_generations must be an integer >= 1"),
        ({"run_name": "a/b"}, "run_name must be a non-empty folder name"),
        ({"push_to_hub": "maybe"}, "push_to_hub must be true or false"),
        ({"learning_rate": "fast"}, "learning_rate must be a number, got 'fast'"),
        ({"resample_budget": -1.0}, "resample_budget must be a number >= 0"),
        ({"verifier_error": 1.0, "curation": "verified"},
         r"verifier_error must be in \[0, 1\) \(0: an exact verifier\)"),
        ({"verifier_error": 0.1, "curation": "dedup"},
         r"verifier_error must be 0 unless curation has a verifier step \('verified' or 'correct'; curation is "
         r"'dedup'\)"),
        ({"correction_max_edits": 0}, "correction_max_edits must be an integer >= 1"),
        ({"selection_pool": 0}, r"selection_pool must be an integer >= 1 \(1: no pool\), got 0"),
        ({"select": "novelty"}, r"selection_pool must be an integer >= 2 with select 'novelty' \(a pool of 1"),
        ({"select": "novelty_stratified"},
         r"selection_pool must be an integer >= 2 with select 'novelty_stratified' \(a pool of 1"),
        ({"select": "best"},
         r"select must be one of \('none', 'novelty', 'novelty_stratified', 'likelihood', 'random'\), got 'best'"),
        ({"selection_pool": 2},
         r"select must be one of \('novelty', 'novelty_stratified', 'likelihood', 'random'\) when selection_pool "
         "is 2"),
        ({"select": "random", "selection_pool": 2, "cycle": "accumulate"},
         "select must be 'none' with cycle 'accumulate' .it keeps every curated sample"),
        ({"select": "novelty_stratified", "selection_pool": 2, "cycle": "accumulate_subsample"},
         "select must be 'none' with cycle 'accumulate_subsample' .it keeps every curated sample"),
        ({"select": "likelihood", "selection_pool": 2, "curation": "correct"},
         r"select must be one of \('novelty', 'novelty_stratified', 'random'\) with curation 'correct': likelihood "
         "scores"),
        ({"selection_pool": 2.5, "select": "random"}, "selection_pool must be an integer, got 2.5"),
        ({"and_weight": -1.0}, "and_weight must be a number >= 0"),
    ],
)
def test_every_validation_error_names_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config(values)


# every float key (a new one is found by its type), and by name those of the issue, in case the lookup found none
FLOAT_KEYS = sorted({key for key, (_, hint) in KEYS.items() if hint is float}
                    | {"learning_rate", "min_learning_rate", "weight_decay", "max_grad_norm", "temperature", "top_p",
                       "synthetic_fraction", "fresh_fraction", "resample_budget", "dropout", "paren_prob"})


@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_is_finite_from_python_yaml_and_the_command_line(key, tmp_path):
    # inf passed checks like "> 0" (resample_budget: inf failed at generation 1, learning_rate: inf in sampling)
    message = rf"^{key} must be a finite number, got (inf|-inf|nan)$"
    for value in (float("inf"), float("-inf"), float("nan"), "inf", "nan", "Infinity", "1e400"):
        with pytest.raises(ConfigError, match=message):
            build_config({key: value})
    for text in (".inf", "-.inf", ".nan", ".NaN", "1.0e+400"):
        (tmp_path / "x.yaml").write_text(f"{key}: {text}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(tmp_path / "x.yaml")
    for text in ("inf", "nan", "-inf", "+inf", "NaN"):
        with pytest.raises(ConfigError, match=message):
            parse_config([f"--{key}={text}"])
    with pytest.raises(ConfigError, match=f"^{key} must be a finite number, got 1000"):  # an int beyond the floats
        build_config({key: 10**400})


def test_extra_samples_must_stay_finite():
    with pytest.raises(ConfigError, match=r"resample_budget must be small enough that resample_budget \* num_samples "
                                          r"\(= 10000\) is finite, got 1e\+305"):
        build_config({"resample_budget": 1e305, "num_samples": 10_000})  # int(inf) raised OverflowError in the loop
    assert build_config({"resample_budget": 1e300, "num_samples": 10_000}).cycle.resample_budget == 1e300


REPO_IDS = {
    # valid
    "foo": True, "foo/bar": True, "123": True, "Foo-BAR_foo.bar123": True, "_x": True, "x_": True, "a.b-c_d/e.f": True,
    "a" * 96: True, "a" * 96 + "/" + "b" * 96: True, "user/x.gi": True, "scl-hf/paper_full_synthetic": True,
    # invalid
    "": False, "/": False, "a/": False, "/a": False, "a/b/c": False, "datasets/foo/bar": False, ".repo_id": False,
    "repo.": False, "-x": False, "x-": False, "a/-x": False, "a./x": False, "foo--bar": False, "foo..bar": False,
    "a--b/c": False, "foo.git": False, "u/foo.git": False, "a" * 97: False, "b/" + "a" * 97: False,
    "has space": False, "tab\tx": False, "a:b": False, "a\nb": False, "a//b": False, "ünï": False, "a/b ": False,
}


def test_repo_id_rule_agrees_with_huggingface_hub():
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    for repo_id, ok in REPO_IDS.items():
        assert is_repo_id(repo_id) is ok, repo_id
        if repo_id.isascii():  # the library's \w also admits other scripts; the Hub's names are ASCII
            try:
                validate_repo_id(repo_id)
                assert ok, repo_id
            except HFValidationError:
                assert not ok, repo_id


@pytest.mark.parametrize("key", ["hub_model_id", "hub_dataset_id"])
def test_hub_repo_ids_are_checked_at_config_time(key):
    # a bad id failed only at publishing, after a generation of compute
    for repo_id, ok in REPO_IDS.items():
        if ok:
            assert getattr(build_config({key: repo_id}).hub, key) == repo_id
        else:
            with pytest.raises(ConfigError, match=f"^{key} must be null or a Hub repo id: 'name' or 'namespace/name'"):
                build_config({key: repo_id})
    with pytest.raises(ConfigError, match=f"^{key} must be null or a Hub repo id.*got 'a--b'$"):
        parse_config([f"--{key}", "a--b"])
    assert getattr(parse_config([f"--{key}", "null"]).hub, key) is None


def test_impossible_dataset_size_fails_at_config_time():
    # max_depth 2 makes 38 distinct True expressions: n = 1,000 searched for 6 s before failing
    with pytest.raises(ConfigError, match=r"^dataset_size must be at most 38, the number of distinct True expressions "
                                          r"the generator can make with depth 1\.\.2 \(raise max_depth\), got 1000$"):
        build_config({"dataset_size": 1000, "max_depth": 2, "heldout_size": 0})
    for size, bounds, most in ((39, {"max_depth": 2}, 38), (3, {}, 2), (7_727, {"max_depth": 3}, 7_726),
                               (100_000, {"min_depth": 3, "max_depth": 3}, 7_688)):
        with pytest.raises(ConfigError, match=f"^dataset_size must be at most {most}, "):
            build_config({"dataset_size": size, "max_depth": 1, "heldout_size": 0, **bounds})
        cfg = build_config({"dataset_size": most, "max_depth": 1, "heldout_size": 0, **bounds})
        assert cfg.data.dataset_size == most
    assert build_config({"dataset_size": 10**12, "max_depth": 5}).data.dataset_size == 10**12


def test_fresh_rows_must_fit_beside_d0():
    # fresh rows never repeat D0 or the previous D_t, which holds the previous generation's fresh rows
    small = {"max_depth": 2, "num_generations": 5, "heldout_size": 0}
    cases = [  # (knobs, the largest dataset_size n, rows that n + 1 needs: n + 1 and its fresh rows)
        ({"cycle": "full_synthetic", "fresh_fraction": 0.5}, 18, 19 + 2 * 10),  # 2 generations' rows: round(9.5)
        ({"cycle": "balanced", "fresh_fraction": 1.0}, 18, 19 + 2 * 10),  # new rows: n - n // 2
        ({"cycle": "incremental", "synthetic_fraction": 0.5, "fresh_fraction": 0.5}, 26, 27 + 2 * 7),  # round(13.5)
        ({"cycle": "expanding", "fresh_fraction": 0.25}, 18, 19 + 4 * 5),  # D_t keeps every generation's fresh rows
    ]
    for knobs, most, needed in cases:
        assert build_config({"dataset_size": most, **small, **knobs}).data.dataset_size == most
        with pytest.raises(ConfigError, match=f"^dataset_size must be at most {most} with cycle='{knobs['cycle']}'.*"
                                              f"need {needed} distinct True expressions, and the generator can "
                                              rf"make 38 with depth 1\.\.2 \(raise max_depth\), got {most + 1}$"):
            build_config({"dataset_size": most + 1, **small, **knobs})
    assert build_config({"dataset_size": 38, **small, "cycle": "expanding"}).data.dataset_size == 38  # no fresh rows
    assert build_config({"dataset_size": 30, **small, "fresh_fraction": 0.5, "num_generations": 1})  # none drawn


def test_the_heldout_set_must_fit_beside_d0():
    # 38 distinct True expressions at depth 1..2: D0 and H share them
    assert build_config({"dataset_size": 30, "max_depth": 2, "heldout_size": 8}).data.heldout_size == 8
    with pytest.raises(ConfigError, match=r"^heldout_size must be at most 8 \(0 turns it off\): D0 and the held-out "
                                          r"set need .* can make 38 with depth 1\.\.2, got 9$"):
        build_config({"dataset_size": 30, "max_depth": 2, "heldout_size": 9})
    with pytest.raises(ConfigError, match="heldout_size must be an integer >= 0"):
        build_config({"heldout_size": -1})
    # fresh rows avoid H too: n + 8 + n (one generation's fresh rows) <= 38
    assert build_config({"dataset_size": 15, "max_depth": 2, "heldout_size": 8, "fresh_fraction": 1.0,
                         "num_generations": 2})
    with pytest.raises(ConfigError, match=r"^dataset_size must be at most 15 with cycle='full_synthetic'.*"
                                          r"the held-out set \(heldout_size=8\)"):
        build_config({"dataset_size": 16, "max_depth": 2, "heldout_size": 8, "fresh_fraction": 1.0,
                      "num_generations": 2})


def test_where_a_run_lives_is_not_its_identity():
    # a run directory moved or copied elsewhere resumes: output_dir may change (and replicates may differ in it)
    assert "output_dir" in RESUMABLE_KEYS and "output_dir" in REPLICATE_KEYS
    assert "run_name" not in RESUMABLE_KEYS


def test_unknown_yaml_key_names_file_and_allowed_keys(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("cycle: balanced\ntemprature: 0.7\n")
    with pytest.raises(ConfigError, match=r"unknown key 'temprature' in .*bad.yaml; did you mean temperature"):
        load_config(recipe)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(tmp_path / "loop.yaml")


def test_abbreviated_and_unknown_flags_are_refused():
    for argv in (["--learning", "1.0"], ["--no_such_flag", "1"]):
        with pytest.raises(SystemExit):
            parse_config(argv)


def test_all_cycles_are_accepted():
    for cycle in CYCLES:
        assert build_config({"cycle": cycle}).cycle.cycle == cycle


def test_stratified_novelty_is_accepted_where_novelty_is():
    for curation in ("none", "verified", "correct"):  # it needs no model score, so correction is allowed
        cycle = build_config({"select": "novelty_stratified", "selection_pool": 2, "curation": curation}).cycle
        assert (cycle.select, cycle.selection_pool, cycle.curation) == ("novelty_stratified", 2, curation)
    recipe = load_config(CONFIGS / "cpu" / "verified_select_stratified.yaml")
    assert (recipe.cycle.curation, recipe.cycle.selection_pool, recipe.cycle.select, recipe.loop.run_name) == (
        "verified", 2, "novelty_stratified", "cpu_verified_select_stratified")


def test_cli_reports_bad_config_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "scl_hf.cli", "data", "--dataset_size", "-3"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "scl-hf data: error: dataset_size must be an integer >= 1, got -3"
    out = subprocess.run([sys.executable, "-m", "scl_hf.cli", "data", "--dataset_size", "1000", "--max_depth", "2"],
                         capture_output=True, text=True)
    assert out.returncode == 2  # at once, before the generator searches for what it cannot make
    assert out.stderr.strip().startswith("scl-hf data: error: dataset_size must be at most 38, ")


def test_every_shipped_recipe_is_valid_and_names_its_own_run():
    recipes = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "sweeps")  # sweeps: test_sweep.py
    assert len(recipes) >= 17
    names = [load_config(path).loop.run_name for path in recipes]
    assert len(set(names)) == len(names) - 1  # paper.yaml and paper/full_synthetic.yaml share their name
    grid = {load_config(p).loop.run_name: load_config(p) for p in (CONFIGS / "paper").glob("*.yaml")}
    assert sorted((c.cycle.cycle, c.cycle.synthetic_fraction if c.cycle.cycle == "incremental" else None,
                   c.cycle.fresh_fraction) for c in grid.values()) == [
        ("balanced", None, 0.0), ("expanding", None, 0.0), ("expanding", None, 0.25), ("full_synthetic", None, 0.0),
        ("incremental", 0.25, 0.0), ("incremental", 0.5, 0.0), ("incremental", 0.75, 0.0), ("incremental", 0.9, 0.0)]
    assert all(c.loop.num_generations == 50 and c.model.n_embd == 384 for c in grid.values())
    beyond = {p.stem: load_config(p) for p in (CONFIGS / "beyond").glob("*.yaml")}
    assert [(beyond[f"verifier_noise_{e}"].cycle.curation, beyond[f"verifier_noise_{e}"].cycle.verifier_error)
            for e in ("010", "030")] == [("verified", 0.1), ("verified", 0.3)]
    assert (beyond["correct"].cycle.curation, beyond["correct"].cycle.correction_max_edits) == ("correct", 2)
    assert [(beyond[f"select_{m}"].cycle.select, beyond[f"select_{m}"].cycle.selection_pool)
            for m in ("novelty", "likelihood", "random")] == [("novelty", 2), ("likelihood", 2), ("random", 2)]
    hot = beyond["temperature_100"]
    assert (hot.sampling.temperature, hot.cycle.cycle, hot.cycle.curation) == (1.0, "full_synthetic", "none")


def test_scale_steps_with_data_trains_in_proportion_to_the_rows():
    fixed = build_config({"dataset_size": 100, "max_steps": 300})
    scaled = build_config({"dataset_size": 100, "max_steps": 300, "scale_steps_with_data": True})
    assert [fixed.max_steps_for(rows) for rows in (100, 250)] == [300, 300]
    assert [scaled.max_steps_for(rows) for rows in (100, 250, 1000, 0)] == [300, 750, 3000, 1]
