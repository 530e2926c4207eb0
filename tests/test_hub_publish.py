"""A tiny loop run published to the embedded Hub, loaded back with stock libraries in a fresh process, synced.

The real libraries run against the embedded server (nothing is mocked): the loop publishes each
generation through ``scl_hf.hub.publish``; a fresh Python process loads ``gen-00`` and ``gen-01``
with ``AutoModelForCausalLM``/``AutoTokenizer``/``load_dataset`` and the metric with
``evaluate.load``; ``scl-hf hub sync`` replays the run to a second embedded server.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from datasets import load_from_disk
from huggingface_hub import HfApi, hf_hub_download

from scl_hf.cli import main
from scl_hf.config import build_config, parse_config
from scl_hf.errors import RunDirError
from scl_hf.expressions import classify
from scl_hf.hub.load import point_libraries_at
from scl_hf.hub.publish import (
    PUBLISHED_FEATURES,
    dataset_card,
    generation_record,
    model_card,
    publish_generation,
    published_splits,
)
from scl_hf.hub.server import HubServer
from scl_hf.hub.sync import sync_run
from scl_hf.hub.target import REAL_ENDPOINT, HubTarget, embedded_repo_ids
from scl_hf.loop import run_loop
from scl_hf.metrics import compute_metrics, space_files

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs" / "smoke.yaml"), "--dataset_size", "40", "--num_samples", "40",
        "--per_device_sample_batch_size", "40", "--max_steps", "8", "--eval_steps", "4", "--warmup_steps", "2",
        "--per_device_train_batch_size", "4", "--num_generations", "2", "--max_new_tokens", "60",
        "--logging_steps", "4", "--run_name", "e2e"]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Two generations of the tiny loop, published by ``run_loop`` itself (its own embedded Hub, stopped when it
    returns); then the same store served again here, to look at what was published."""
    out = tmp_path_factory.mktemp("publish")
    cfg = parse_config([*TINY, "--output_dir", str(out / "runs"), "--embedded_hub_root", str(out / "hub")])
    run_loop(cfg)
    server = HubServer(out / "hub", port=0).start()
    try:
        yield cfg, HubTarget(server.url, None, *embedded_repo_ids(cfg), embedded=True, server=server)
    finally:
        server.stop()


def file_table(api: HfApi, repo: str, repo_type: str, revision: str) -> dict:
    """path -> (size, content id) at a revision, .gitattributes aside."""
    info = api.repo_info(repo, repo_type=repo_type, revision=revision, files_metadata=True)
    return {s.rfilename: (s.size, s.lfs.sha256 if s.lfs else s.blob_id) for s in info.siblings
            if s.rfilename != ".gitattributes"}


@pytest.mark.slow
def test_each_generation_is_one_tagged_commit(published):
    cfg, target = published
    api = HfApi(endpoint=target.endpoint, token=False)
    model, data = target.model_repo_id, target.dataset_repo_id
    assert (model, data, target.space_repo_id) == ("scl-hf/e2e", "scl-hf/e2e", "scl-hf/boolean_expressions")

    commits = api.list_repo_commits(model)
    assert [c.title for c in commits] == ["gen-01: model, tokenizer and card of generation 1",
                                          "gen-00: model, tokenizer and card of generation 0", "initial commit"]
    tags = {t.name: t.target_commit for t in api.list_repo_refs(model).tags}
    assert tags == {"gen-01": commits[0].commit_id, "gen-00": commits[1].commit_id}
    saved = {p.name for p in (cfg.run_dir / "gen_00" / "model").iterdir()}  # the model folder as the loop saved it
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= saved
    assert set(api.list_repo_files(model, revision="gen-00")) == saved | {".gitattributes", "README.md",
                                                                          "generation.json"}

    data_commits = api.list_repo_commits(data, repo_type="dataset")
    assert [c.title for c in data_commits][:2] == ["gen-01: training data and samples of generation 1",
                                                   "gen-00: training data and samples of generation 0"]
    assert {t.name: t.target_commit for t in api.list_repo_refs(data, repo_type="dataset").tags} == {
        "gen-01": data_commits[0].commit_id, "gen-00": data_commits[1].commit_id}
    shards = ["gen-00/samples-00000-of-00001.parquet", "gen-00/train-00000-of-00001.parquet"]
    assert sorted(api.list_repo_files(data, repo_type="dataset", revision="gen-00")) == [
        ".gitattributes", "README.md", *shards]
    assert sorted(api.list_repo_files(data, repo_type="dataset", revision="gen-01")) == [
        ".gitattributes", "README.md", *shards, "gen-01/samples-00000-of-00001.parquet",
        "gen-01/train-00000-of-00001.parquet"]

    metrics = json.loads((cfg.run_dir / "gen_01" / "metrics.json").read_text())
    record = json.loads(Path(hf_hub_download(model, "generation.json", revision="gen-01", endpoint=target.endpoint,
                                                token=False)).read_text())
    assert record["generation"] == 1 and record["config_hash"] == cfg.hash()
    assert record["metrics"] == metrics["metrics"] and record["data"] == metrics["data"]
    assert record["reference"] == metrics["reference"] and record["reference"]["num_samples"] > 0
    assert record["parent"]["samples_from"] == {"repo": model, "revision": "gen-00"}
    assert record["parent"]["weights_from"] is None  # init_from: scratch
    card = api.model_info(model, revision="gen-01").card_data
    assert card.library_name == "transformers" and card.pipeline_tag == "text-generation"
    results = {r.metric_type: r.metric_value for r in card.eval_results}
    assert results["true_rate"] == metrics["metrics"]["true_rate"]
    assert results["diversity"] == metrics["metrics"]["diversity"]
    for gen in ("gen_00", "gen_01"):  # publishing leaves the run directory as the loop wrote it
        for folder in ("train_data", "samples"):
            assert not list((cfg.run_dir / gen / folder).glob("cache-*")), (gen, folder)
    # the Space holds the module folder's files and the package's own modules, byte for byte
    published_files = set(api.list_repo_files(target.space_repo_id, repo_type="space")) - {".gitattributes"}
    assert published_files == set(space_files()) >= {"boolean_expressions.py", "README.md", "app.py",
                                                     "requirements.txt", "measures.py", "expressions.py",
                                                     "diversity.py"}
    for name, source in space_files().items():
        copy = hf_hub_download(target.space_repo_id, name, repo_type="space", endpoint=target.endpoint, token=False)
        assert Path(copy).read_bytes() == source.read_bytes(), name


@pytest.mark.slow
def test_resume_republishes_nothing_and_finishes_an_interrupted_publish(published):
    cfg, target = published
    api = HfApi(endpoint=target.endpoint, token=False)
    model, data = target.model_repo_id, target.dataset_repo_id
    before = ([c.commit_id for c in api.list_repo_commits(model)],
              [c.commit_id for c in api.list_repo_commits(data, repo_type="dataset")])
    tags = {t.name: t.target_commit for t in api.list_repo_refs(model).tags}

    run_loop(cfg)  # resume: every generation complete, published again
    result = publish_generation(cfg.run_dir, 1, cfg, target)
    assert (result["model"]["created"], result["dataset"]["created"]) == (False, False)

    # A publisher killed after the commit but before the tag: the next call only adds the tag.
    api.delete_tag(model, tag="gen-01")
    result = publish_generation(cfg.run_dir, 1, cfg, target)
    assert result["model"] == {"repo_id": model, "tag": "gen-01", "commit": tags["gen-01"], "created": True}
    after = ([c.commit_id for c in api.list_repo_commits(model)],
             [c.commit_id for c in api.list_repo_commits(data, repo_type="dataset")])
    assert after == before
    assert {t.name: t.target_commit for t in api.list_repo_refs(model).tags} == tags

    with pytest.raises(RunDirError, match="gen_05/metrics.json is missing"):
        publish_generation(cfg.run_dir, 5, cfg, target)


LOAD_SCRIPT = textwrap.dedent("""
    import json, sys


    class NoSclHf:  # as if scl_hf were not installed: the published model, data and metric need none of it
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "scl_hf":
                raise ModuleNotFoundError(f"No module named {name!r}")


    sys.meta_path.insert(0, NoSclHf())
    try:
        import scl_hf
    except ModuleNotFoundError:
        pass
    else:
        raise AssertionError("scl_hf is importable")
    import evaluate
    import torch
    from datasets import load_dataset
    from huggingface_hub import HfApi
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, model_repo, dataset_repo, space_repo = sys.argv[1:5]
    out = {}
    for g in (0, 1):
        tag = f"gen-{g:02d}"
        hub = AutoModelForCausalLM.from_pretrained(model_repo, revision=tag).state_dict()
        local = AutoModelForCausalLM.from_pretrained(f"{run_dir}/gen_{g:02d}/model").state_dict()
        tokenizer = AutoTokenizer.from_pretrained(model_repo, revision=tag)
        data = load_dataset(dataset_repo, tag, revision=tag)
        out[tag] = {
            "weights_equal": hub.keys() == local.keys() and all(torch.equal(hub[k], local[k]) for k in local),
            "first_weight_sum": float(hub["transformer.wte.weight"].sum()),
            "round_trip": tokenizer.decode(tokenizer("not (True or False)")["input_ids"]),
            "train": data["train"].to_dict(),
            "samples": data["samples"].to_dict(),
        }
    out["tags"] = [t.name for t in HfApi().list_repo_refs(model_repo).tags]
    metric = evaluate.load(space_repo)
    out["metric"] = metric.compute(predictions=out["gen-01"]["samples"]["text"])
    out["metric_novelty"] = metric.compute(predictions=out["gen-01"]["samples"]["text"],
                                           training_texts=out["gen-01"]["train"]["text"],
                                           real_texts=out["gen-00"]["train"]["text"])
    out["scl_hf_loaded"] = sorted(m for m in sys.modules if m.partition(".")[0] == "scl_hf")
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_fresh_process_loads_both_generations_with_stock_libraries(published, tmp_path):
    cfg, target = published
    env = {**os.environ, "HF_ENDPOINT": target.endpoint, "HF_HOME": str(tmp_path / "fresh_hf_home"),
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(cfg.run_dir), target.model_repo_id,
                           target.dataset_repo_id, target.space_repo_id], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["tags"] == ["gen-00", "gen-01"]
    assert out["gen-00"]["weights_equal"] and out["gen-01"]["weights_equal"]
    assert out["gen-00"]["first_weight_sum"] != out["gen-01"]["first_weight_sum"]
    for g in (0, 1):
        tag, gen = f"gen-{g:02d}", cfg.run_dir / f"gen_{g:02d}"
        assert out[tag]["round_trip"] == "not (True or False)"
        train, samples = load_from_disk(str(gen / "train_data")), load_from_disk(str(gen / "samples"))
        for column in train.column_names:  # provenance kept exactly
            assert out[tag]["train"][column] == train[column], column
        for column in samples.column_names:
            assert out[tag]["samples"][column] == samples[column], column
        assert out[tag]["samples"]["origin"] == ["synthetic"] * len(samples)
        assert out[tag]["train"]["label"] == [classify(t) for t in train["text"]]
        assert set(out[tag]["train"]["truncated"]) == set(out[tag]["train"]["logprob"]) == {None}
    assert out["gen-00"]["train"]["generation"] == [-1] * cfg.data.dataset_size
    assert set(out["gen-01"]["train"]["model_revision"]) == {"gen-00"}  # full_synthetic: all samples of M_00
    metrics = json.loads((cfg.run_dir / "gen_01" / "metrics.json").read_text())["metrics"]
    expected = compute_metrics(out["gen-01"]["samples"]["text"])
    assert out["metric"] == expected and out["scl_hf_loaded"] == []
    assert {k: metrics[k] for k in expected} == expected
    assert out["metric_novelty"] == metrics  # the loop's own numbers: novelty against D_1, drift from D0


@pytest.mark.slow
def test_in_process_loading_and_the_sample_command(published, capsys, monkeypatch):
    """The read path in a process that imported the libraries already: ``point_libraries_at`` points them."""
    cfg, target = published
    import evaluate

    for key in ("HF_ENDPOINT", "HF_HUB_DISABLE_XET"):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # restored after the test
        if not os.environ[key]:
            monkeypatch.delenv(key)
    point_libraries_at(target.endpoint)
    try:
        _in_process_loading(cfg, target, capsys, evaluate)
    finally:
        point_libraries_at(REAL_ENDPOINT)  # modules imported meanwhile go back to the default


def _in_process_loading(cfg, target, capsys, evaluate):
    import scl_hf
    from scl_hf.config import SamplingConfig
    from scl_hf.hub.load import list_generations, load_generation, load_generation_data
    from scl_hf.sample import sample_expressions

    samples = load_from_disk(str(cfg.run_dir / "gen_00" / "samples"))
    assert load_generation_data(target.dataset_repo_id, 0, split="samples")["text"] == samples["text"]
    assert list(list_generations(target.model_repo_id)) == [0, 1]
    assert evaluate.load(target.space_repo_id).compute(predictions=samples["text"]) == compute_metrics(
        samples["text"])
    assert scl_hf.load_generation is load_generation

    assert main(["sample", "--repo", target.model_repo_id, "--generation", "1", "-n", "25", "--seed", "3",
                 "--endpoint", target.endpoint]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["revision"], out["num_samples"], len(out["samples"])) == ("gen-01", 25, 25)
    assert all(s["label"] == classify(s["text"]) for s in out["samples"])
    assert sum(out["label_counts"].values()) == 25
    model, tokenizer = load_generation(target.model_repo_id, 1)
    direct = sample_expressions(model, tokenizer, SamplingConfig(num_samples=25, per_device_sample_batch_size=25),
                                seed=3)
    assert [s["text"] for s in out["samples"]] == direct.texts

    assert main(["sample", "--repo", target.model_repo_id, "--generation", "1", "-n", "0"]) == 2
    assert "num_samples must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["sample", "--repo", "x/y", "--generation", "0", "--hub_root", "a", "--endpoint", "b"]) == 2
    assert "at most one of --hub_root" in capsys.readouterr().err


@pytest.mark.slow
def test_sync_replays_generations_to_another_server(published, tmp_path, capsys):
    cfg, target = published
    source = HfApi(endpoint=target.endpoint, token=False)
    dst = HubServer(tmp_path / "mirror_hub").start()
    try:
        result = sync_run(cfg.run_dir, to=dst.url, namespace="mirror")
        assert [(r["tag"], r["created"]) for r in result["model"]] == [("gen-00", True), ("gen-01", True)]
        assert [(r["tag"], r["created"]) for r in result["dataset"]] == [("gen-00", True), ("gen-01", True)]
        mirror = HfApi(endpoint=dst.url, token=False)
        for repo, repo_type in ((target.model_repo_id, "model"), (target.dataset_repo_id, "dataset")):
            copy = "mirror/" + repo.split("/")[1]
            assert [t.name for t in mirror.list_repo_refs(copy, repo_type=repo_type).tags] == ["gen-00", "gen-01"]
            for tag in ("gen-00", "gen-01"):
                assert file_table(mirror, copy, repo_type, tag) == file_table(source, repo, repo_type, tag)
            assert ([c.title for c in mirror.list_repo_commits(copy, repo_type=repo_type)][:2]
                    == [c.title for c in source.list_repo_commits(repo, repo_type=repo_type)][:2])
        space = "mirror/boolean_expressions"
        assert file_table(mirror, space, "space", "main") == file_table(source, target.space_repo_id, "space", "main")
        counts = len(mirror.list_repo_commits("mirror/e2e"))

        # Again, through the command line: nothing new to replay.
        assert main(["hub", "sync", str(cfg.run_dir), "--to", dst.url, "--namespace", "mirror"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert [r["created"] for r in again["model"] + again["dataset"]] == [False] * 4
        assert len(mirror.list_repo_commits("mirror/e2e")) == counts
    finally:
        dst.stop()


# --- where a run publishes: decided by open_hub, checked before any training ------------------------------


@pytest.fixture
def guarded_hub(tmp_path, monkeypatch):
    """An embedded Hub served with a token, standing in for the real Hub (its whoami: user "user", no orgs)."""
    server = HubServer(tmp_path / "guarded", port=0, token="hf_right").start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.stop()


def hub_config(tmp_path, *extra):
    return parse_config([*TINY, "--output_dir", str(tmp_path / "runs"), "--push_to_hub", "true", *extra])


def test_push_to_hub_without_a_token_fails_before_training(guarded_hub, tmp_path):
    from scl_hf.config import ConfigError

    with pytest.raises(ConfigError, match="no Hugging Face token was found.*HF_TOKEN.*hf auth login"):
        run_loop(hub_config(tmp_path))
    assert not (tmp_path / "runs" / "e2e" / "gen_00").exists()
    assert main(["run", *TINY, "--output_dir", str(tmp_path / "runs"), "--push_to_hub", "true"]) == 2


def test_push_to_hub_checks_the_token_and_the_namespace(guarded_hub, tmp_path, monkeypatch):
    from scl_hf.config import ConfigError
    from scl_hf.hub.target import open_hub

    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(ConfigError, match="refused the Hugging Face token"):
        open_hub(hub_config(tmp_path))
    monkeypatch.setenv("HF_TOKEN", "hf_right")
    target = open_hub(hub_config(tmp_path))
    assert (target.endpoint, target.token, target.embedded, target.server) == (guarded_hub.url, "hf_right", False,
                                                                              None)
    assert (target.model_repo_id, target.dataset_repo_id, target.space_repo_id) == (
        "user/e2e", "user/e2e", "user/boolean_expressions")  # <your user>/<run_name>
    assert open_hub(hub_config(tmp_path, "--hub_dataset_id", "user/d")).dataset_repo_id == "user/d"
    for key in ("hub_model_id", "hub_dataset_id"):
        with pytest.raises(ConfigError, match=f"{key} must be a repo id in a namespace the token of 'user' can write "
                                              r"\(user\), got 'someone-else/x'"):
            open_hub(hub_config(tmp_path, f"--{key}", "someone-else/x"))
        with pytest.raises(ConfigError, match=key):
            run_loop(hub_config(tmp_path, f"--{key}", "someone-else/x"))
    assert not (tmp_path / "runs" / "e2e" / "gen_00").exists()
    assert open_hub(parse_config([*TINY, "--publish", "false"])) is None


LIBRARY_STATE = textwrap.dedent("""
    import json, os
    import huggingface_hub.constants as c
    before = [c.ENDPOINT, c.HF_HUB_DISABLE_XET, os.environ.get("HF_ENDPOINT"), os.environ.get("HF_HUB_DISABLE_XET")]
    import scl_hf.hub.publish, scl_hf.hub.sync, scl_hf.loop, scl_hf.cli
    from scl_hf.hub.target import xet_scope
    after_import = [c.ENDPOINT, c.HF_HUB_DISABLE_XET, os.environ.get("HF_ENDPOINT"),
                    os.environ.get("HF_HUB_DISABLE_XET")]
    with xet_scope("http://127.0.0.1:1"):
        inside = c.HF_HUB_DISABLE_XET
    with xet_scope("https://huggingface.co"):
        inside_real = c.HF_HUB_DISABLE_XET
    print(json.dumps([before, after_import, inside, inside_real, c.HF_HUB_DISABLE_XET]))
""")


def test_importing_the_write_path_changes_no_library_setting():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_HUB_DISABLE_XET")}
    proc = subprocess.run([sys.executable, "-c", LIBRARY_STATE], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after_import, inside, inside_real, after = json.loads(proc.stdout)
    assert before == after_import == [REAL_ENDPOINT, False, None, None]
    assert (inside, inside_real, after) == (True, False, False)  # git-LFS for an embedded Hub, restored after


def test_cards_say_what_an_imperfect_verifier_got_wrong_and_what_was_corrected():
    cfg = build_config({"curation": "verified", "verifier_error": 0.1, "run_name": "noisy"})
    target = HubTarget("http://127.0.0.1:1", None, *embedded_repo_ids(cfg), embedded=True, server=None)
    curation = {"steps": ["verified"], "input": 120, "kept": 100, "extra_samples": 20, "shortfall": 0,
                "rejected": {"syntax_error": 5, "false": 15, "duplicate": 0, "quota": 0},
                "verifier_calls": 120, "wrong_verdicts": {"accepted": 9, "rejected": 3},
                "corrections": {"made": 30, "edits": {"0": 2, "1": 25, "2": 5}}}
    metrics = {"metrics": {"true_rate": 0.5, "diversity": 0.4},
               "data": {"num_rows": 100, "curation": curation, "origin_counts": {}}}
    record = generation_record(1, cfg, target, metrics)
    line = "Imperfect verifier (verifier_error 0.1): 120 verdicts,\n  9 wrongly accepted, 3 wrongly rejected."
    assert line in model_card(record, cfg, target)
    assert line in dataset_card(record, cfg, target, ["gen-00", "gen-01"])
    fixed = "Corrected: 30 samples made True by the fewest token edits\n  (0 edits: 2, 1 edits: 25, 2 edits: 5)."
    assert fixed in model_card(record, cfg, target) and fixed in dataset_card(record, cfg, target, ["gen-00"])
    exact = build_config({"curation": "verified", "run_name": "exact"})
    quiet = generation_record(1, exact, target, metrics)
    assert "Imperfect verifier" not in dataset_card(quiet, exact, target, ["gen-00", "gen-01"])


def test_cards_say_what_a_selection_kept_of_its_pool():
    cfg = build_config({"select": "novelty", "selection_pool": 3, "run_name": "picky"})
    target = HubTarget("http://127.0.0.1:1", None, *embedded_repo_ids(cfg), embedded=True, server=None)
    curation = {"steps": [], "input": 300, "kept": 100, "extra_samples": 200, "shortfall": 0,
                "rejected": {"not_selected": 200}, "samples_drawn": 330, "samples_per_kept_row": 3.3,
                "selection": {"select": "novelty", "selection_pool": 3, "pool_size": 300}}
    metrics = {"metrics": {"true_rate": 0.5, "diversity": 0.4},
               "data": {"num_rows": 100, "curation": curation, "origin_counts": {}}}
    record = generation_record(1, cfg, target, metrics)
    line = ("Selected: 100 of a pool of 300 curated samples\n  (3x the rows needed) by `novelty`;\n"
            "  330 samples drawn in all, 3.30 per kept row.")
    assert line in model_card(record, cfg, target)
    assert line in dataset_card(record, cfg, target, ["gen-00", "gen-01"])
    curation.pop("selection")
    assert "Selected:" not in dataset_card(generation_record(1, cfg, target, metrics), cfg, target, ["gen-00"])


def test_samples_saved_before_log_probabilities_are_published_with_nulls(tmp_path):
    from datasets import Dataset

    from scl_hf.cycles import rows

    rows(["True", "not False"], "real", -1).save_to_disk(str(tmp_path / "train_data"))
    Dataset.from_dict({"text": ["True", "Tru"], "label": ["true", "syntax_error"], "depth": [1, -1],
                       "truncated": [False, True], "generation": [0, 0],
                       "model_revision": ["gen-00", "gen-00"]}).save_to_disk(str(tmp_path / "samples"))
    splits = published_splits(tmp_path)
    assert all(list(ds.features) == list(PUBLISHED_FEATURES) for ds in splits.values())
    assert splits["samples"]["logprob"] == [None, None] and splits["train"]["num_tokens"] == [None, None]
    assert splits["samples"]["truncated"] == [False, True] and splits["train"]["label"] == ["true", "true"]
