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
from scl_hf.config import parse_config
from scl_hf.expressions import classify
from scl_hf.hub.publish import publish_generation
from scl_hf.hub.server import HubServer
from scl_hf.hub.sync import sync_run
from scl_hf.hub.target import REAL_ENDPOINT, configure_hub, point_libraries_at
from scl_hf.loop import run_loop
from scl_hf.metrics import compute_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs" / "smoke.yaml"), "--dataset_size", "40", "--num_samples", "40",
        "--per_device_sample_batch_size", "40", "--max_steps", "8", "--eval_steps", "4", "--warmup_steps", "2",
        "--per_device_train_batch_size", "4", "--num_generations", "2", "--max_new_tokens", "60",
        "--logging_steps", "4", "--run_name", "e2e"]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Two generations of the tiny loop, published by the loop itself to an embedded Hub in this process."""
    out = tmp_path_factory.mktemp("publish")
    cfg = parse_config([*TINY, "--output_dir", str(out / "runs"), "--embedded_hub_root", str(out / "hub")])
    saved = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HUB_DISABLE_XET")}
    target = configure_hub(cfg)
    try:
        run_loop(cfg, hub_target=target)
        yield cfg, target
    finally:
        target.stop()
        point_libraries_at(REAL_ENDPOINT, xet=False)  # modules imported meanwhile go back to the default
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


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
    record = json.loads(Path(hf_hub_download(model, "generation.json", revision="gen-01")).read_text())
    assert record["generation"] == 1 and record["config_hash"] == cfg.hash()
    assert record["metrics"] == metrics["metrics"] and record["data"] == metrics["data"]
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
    space_files = api.list_repo_files(target.space_repo_id, repo_type="space")
    assert {"boolean_expressions.py", "README.md", "app.py", "requirements.txt"} <= set(space_files)
    assert not [f for f in space_files if f.endswith(".pyc")]


@pytest.mark.slow
def test_resume_republishes_nothing_and_finishes_an_interrupted_publish(published):
    cfg, target = published
    api = HfApi(endpoint=target.endpoint, token=False)
    model, data = target.model_repo_id, target.dataset_repo_id
    before = ([c.commit_id for c in api.list_repo_commits(model)],
              [c.commit_id for c in api.list_repo_commits(data, repo_type="dataset")])
    tags = {t.name: t.target_commit for t in api.list_repo_refs(model).tags}

    run_loop(cfg, hub_target=target)  # resume: every generation complete, published again
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

    with pytest.raises(ValueError, match="gen_05/metrics.json is missing"):
        publish_generation(cfg.run_dir, 5, cfg, target)


LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
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
    out["metric"] = evaluate.load(space_repo).compute(predictions=out["gen-01"]["samples"]["text"])
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
        assert set(out[tag]["train"]["truncated"]) == {None}
    assert out["gen-00"]["train"]["generation"] == [-1] * cfg.data.dataset_size
    assert set(out["gen-01"]["train"]["model_revision"]) == {"gen-00"}  # full_synthetic: all samples of M_00
    metrics = json.loads((cfg.run_dir / "gen_01" / "metrics.json").read_text())["metrics"]
    expected = compute_metrics(out["gen-01"]["samples"]["text"])
    assert out["metric"] == expected
    assert {k: v for k, v in metrics.items() if k != "novelty_rate"} == expected


@pytest.mark.slow
def test_in_process_loading_and_the_sample_command(published, capsys):
    """In this process the libraries were imported before configure_hub: they work through the patched endpoint."""
    cfg, target = published
    import evaluate

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
    assert "-n/--num_samples must be an integer >= 1" in capsys.readouterr().err
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


CONFIGURE_SCRIPT = textwrap.dedent("""
    import json, os, sys, warnings
    from scl_hf.config import build_config
    from scl_hf.hub import target as t

    out = {}
    base = {"run_name": "r", "output_dir": sys.argv[1]}
    out["off"] = t.configure_hub(build_config({**base, "publish": False}))
    os.environ["HF_TOKEN"] = "hf_secret"
    real = t.configure_hub(build_config({**base, "push_to_hub": True, "hub_model_id": "me/m"}))
    out["real"] = [real.endpoint, real.token, real.model_repo_id, real.dataset_repo_id, real.embedded,
                   real.server is None, os.environ["HF_ENDPOINT"], os.environ.get("HF_HUB_DISABLE_XET")]
    del os.environ["HF_TOKEN"]
    os.environ["HF_ENDPOINT"] = "https://example.invalid"
    token_file = os.path.join(sys.argv[1], "token")
    open(token_file, "w").write("hf_from_file\\n")
    os.environ["HF_TOKEN_PATH"] = token_file
    out["token_file"] = t.find_token()
    os.remove(token_file)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lead = t.configure_hub(build_config({**base, "push_to_hub": True, "hub_dataset_id": "scl-hf/d"}))
    out["warned"] = [str(w.message)[:40] for w in caught]
    out["lead"] = [lead.embedded, lead.model_repo_id, lead.dataset_repo_id, lead.space_repo_id,
                   lead.endpoint == os.environ["HF_ENDPOINT"], os.environ["HF_HUB_DISABLE_XET"],
                   os.path.isfile(os.path.join(sys.argv[1], "hub", "server.json"))]
    os.environ["RANK"] = "1"
    follower = t.configure_hub(build_config(base))
    out["follower"] = [follower.endpoint == lead.endpoint, follower.server is None]
    lead.stop()
    t.FOLLOWER_WAIT_SECONDS = 0.3
    alone = t.configure_hub(build_config(base))
    out["alone"] = [alone.endpoint, os.environ.get("HF_HUB_OFFLINE")]
    out["hf_imported"] = [m for m in ("huggingface_hub", "datasets", "transformers", "evaluate") if m in sys.modules]
    print(json.dumps(out))
""")


def test_configure_hub_decides_before_the_libraries_are_imported(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT", "RANK", "LOCAL_RANK")}
    proc = subprocess.run([sys.executable, "-c", CONFIGURE_SCRIPT, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["off"] is None
    assert out["real"] == ["https://huggingface.co", "hf_secret", "me/m", "me/m", False, True,
                           "https://huggingface.co", "1"]  # the suite's HF_HUB_DISABLE_XET=1 is left alone
    assert out["token_file"] == "hf_from_file"
    assert out["warned"] == ["push_to_hub is true but no token is conf"]
    assert out["lead"] == [True, "scl-hf/r", "scl-hf/d", "scl-hf/boolean_expressions", True, "1", True]
    assert out["follower"] == [True, True]
    assert out["alone"] == ["", "1"]
    assert out["hf_imported"] == []
