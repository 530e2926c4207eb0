"""The loop end to end on a tiny config: layout, determinism, resume after SIGKILL, config changes, 2 processes."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import load_from_disk

from scl_hf.config import ConfigError, parse_config
from scl_hf.expressions import classify
from scl_hf.hub.server import HubServer
from scl_hf.loop import check_resume, run_loop

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", str(ROOT / "configs" / "smoke.yaml"), "--publish", "false", "--dataset_size", "40",
        "--num_samples", "40", "--per_device_sample_batch_size", "40", "--max_steps", "8", "--eval_steps", "4",
        "--warmup_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "2", "--max_new_tokens",
        "60", "--logging_steps", "4"]


def tiny(tmp_path, *extra):
    return [*TINY, "--output_dir", str(tmp_path), *extra]


def snapshot(run_dir: Path) -> dict:
    """Everything a run produced that must not depend on timing: datasets and metrics."""
    out = {}
    for gen in sorted(run_dir.glob("gen_*")):
        metrics = json.loads((gen / "metrics.json").read_text())
        metrics["train"].pop("seconds")
        metrics["train"].pop("validation_seconds")
        metrics["sampling"].pop("seconds")
        if metrics["data"]["curation"] is not None:
            metrics["data"]["curation"].pop("seconds")
        out[gen.name] = {
            "metrics": metrics,
            "train_data": load_from_disk(str(gen / "train_data")).to_dict(),
            "samples": load_from_disk(str(gen / "samples")).to_dict(),
        }
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted in-process run of the tiny full_synthetic loop."""
    cfg = parse_config(tiny(tmp_path_factory.mktemp("reference"), "--run_name", "r"))
    return run_loop(cfg)


def test_layout_and_metrics(reference):
    assert (reference / "config.yaml").is_file() and (reference / "report.md").is_file()
    for t in (0, 1):
        gen = reference / f"gen_{t:02d}"
        assert sorted(p.name for p in gen.iterdir()) == [
            "metrics.json", "model", "samples", "sampling.json", "train_data", "train_history.json"]
        assert (gen / "model" / "train_result.json").is_file()
        m = json.loads((gen / "metrics.json").read_text())
        assert m["data"]["curation"] is None  # no curation, no resampling: no curation.json
        assert set(m["eval"]) == {"heldout_nll", "samples_nll_m0", "samples_nll"}
        assert {"jsd_depth", "jsd_length", "tail_coverage_depth", "distinct_2", "top_samples"} <= set(m["metrics"])
        assert all(isinstance(v, float) and v > 0 for v in m["eval"].values())
        ref = m["reference"]  # the same metric on a real sample of S_t's size, without the mode
        assert set(ref) == set(m["metrics"]) - {"novelty_rate", "top_samples"} and ref["num_samples"] == 40
        assert ref["true_rate"] == 1.0 and ref["unique_rate"] == 1.0 and ref["jsd_depth"] < 1.0
        if t == 0:  # M_0 judges its own samples
            assert m["eval"]["samples_nll_m0"] == m["eval"]["samples_nll"]
        history = json.loads((gen / "train_history.json").read_text())
        assert [r["step"] for r in history if "val_loss" in r] == [4, 8]
        assert [r["step"] for r in history if "loss" in r] == [4, 8] and all("lr" in r for r in history if "loss" in r)
        assert m["generation"] == t and m["metrics"]["num_samples"] == 40 and m["sampling"]["num_samples"] == 40
        assert m["metrics"]["syntax_error_rate"] + m["metrics"]["false_rate"] + m["metrics"]["true_rate"] == \
            pytest.approx(1.0)
        assert m["train"]["steps"] == 8 and 0 < m["train"]["best_step"] <= 8
        assert m["data"]["num_rows"] == 40
    d0 = load_from_disk(str(reference / "gen_00" / "train_data"))
    assert set(d0["origin"]) == {"real"} and set(d0["generation"]) == {-1}
    d1 = load_from_disk(str(reference / "gen_01" / "train_data"))
    s0 = load_from_disk(str(reference / "gen_00" / "samples"))
    assert set(d1["origin"]) == {"synthetic"} and set(d1["model_revision"]) == {"gen-00"}
    assert d1["text"] == s0["text"]  # full synthetic, no curation: D_1 is S_0
    assert s0.column_names == ["text", "label", "depth", "truncated", "logprob", "num_tokens", "generation",
                               "model_revision"]
    assert all(lp < 0 for lp in s0["logprob"]) and all(n >= 1 for n in s0["num_tokens"])


def test_curation_record_is_written_as_it_is(tmp_path):
    run = run_loop(parse_config(tiny(tmp_path, "--run_name", "c", "--curation", "dedup", "--num_generations", "2")))
    assert not (run / "gen_00" / "curation.json").exists()
    record = json.loads((run / "gen_01" / "curation.json").read_text())
    assert "curation" not in record and record["steps"] == ["dedup"]
    assert json.loads((run / "gen_01" / "metrics.json").read_text())["data"]["curation"] == record


def test_an_imperfect_verifier_is_reproducible_across_runs_and_after_a_lost_data_stage(tmp_path):
    args = ["--curation", "verified", "--verifier_error", "0.3", "--resample_budget", "1.0"]
    first = run_loop(parse_config(tiny(tmp_path, "--run_name", "a", *args)))
    record = json.loads((first / "gen_01" / "curation.json").read_text())
    assert record["verifier_calls"] == record["input"] > 0
    assert sum(record["wrong_verdicts"].values()) > 0  # 0.3 of ~40 verdicts: none wrong has probability 1e-6
    # the data stage redone from the saved S_0 and M_0 (as a resume after a kill there does) draws the same verdicts
    shutil.rmtree(first / "gen_01")
    run_loop(parse_config(tiny(tmp_path, "--run_name", "a", *args)))
    again = json.loads((first / "gen_01" / "curation.json").read_text())
    assert again.pop("seconds").keys() == record.pop("seconds").keys() == {"resampling", "curating", "selecting"}
    assert again == record
    assert record["samples_drawn"] == 40 + record["extra_samples"]
    assert record["samples_per_kept_row"] == pytest.approx(record["samples_drawn"] / record["kept"])
    second = run_loop(parse_config(tiny(tmp_path, "--run_name", "b", *args)))
    assert snapshot(second) == snapshot(first)


def test_correct_runs_in_the_loop_and_resumes_identically(tmp_path):
    args = ["--curation", "correct", "--num_generations", "3"]
    first = run_loop(parse_config(tiny(tmp_path, "--run_name", "a", *args)))
    d1 = load_from_disk(str(first / "gen_01" / "train_data"))
    assert d1.column_names == ["text", "origin", "generation", "model_revision", "corrected_from", "edits"]
    record = json.loads((first / "gen_01" / "curation.json").read_text())
    assert record["corrections"]["made"] == sum(1 for e in d1["edits"] if e > 0) > 0
    assert all(classify(t) == "true" for t in d1["text"]) and record["verifier_calls"] == record["input"]
    shutil.rmtree(first / "gen_02")
    shutil.rmtree(first / "gen_01")  # as if killed before D_1 was written: the corrections are made again
    run_loop(parse_config(tiny(tmp_path, "--run_name", "a", *args)))
    second = run_loop(parse_config(tiny(tmp_path, "--run_name", "b", *args)))
    assert snapshot(second) == snapshot(first)


@pytest.mark.parametrize("method", ["novelty", "likelihood", "random"])
def test_selection_runs_in_the_loop_and_resumes_identically(tmp_path, method):
    args = ["--select", method, "--selection_pool", "2"]
    run = run_loop(parse_config(tiny(tmp_path, "--run_name", "s", *args)))
    record = json.loads((run / "gen_01" / "curation.json").read_text())
    assert record["selection"] == {"select": method, "selection_pool": 2, "pool_size": 80}
    assert record["kept"] == 40 and record["rejected"]["not_selected"] == 40 and record["shortfall"] == 0
    assert record["samples_drawn"] == 40 + record["extra_samples"] == 80 and record["samples_per_kept_row"] == 2.0
    d1 = load_from_disk(str(run / "gen_01" / "train_data"))
    assert len(d1) == 40 and set(d1["origin"]) == {"synthetic"}
    before = snapshot(run)
    shutil.rmtree(run / "gen_01")  # as if killed before D_1 was written: the pool is drawn and selected again
    run_loop(parse_config(tiny(tmp_path, "--run_name", "s", *args)))
    assert snapshot(run) == before


def test_progress_bars_are_restored(tmp_path):
    import datasets
    import huggingface_hub.utils
    import transformers.utils.logging

    datasets.enable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()  # a user who turned one off keeps it off
    try:
        run_loop(parse_config(tiny(tmp_path, "--run_name", "p", "--num_generations", "1")))
        assert datasets.is_progress_bar_enabled() and transformers.utils.logging.is_progress_bar_enabled()
        assert huggingface_hub.utils.are_progress_bars_disabled()
    finally:
        huggingface_hub.utils.enable_progress_bars()


def test_same_config_and_seed_give_the_same_run(reference, tmp_path):
    again = run_loop(parse_config(tiny(tmp_path, "--run_name", "r")))
    assert snapshot(again) == snapshot(reference)


def test_changed_config_is_refused_on_resume(reference):
    cfg = parse_config(tiny(reference.parent, "--run_name", "r", "--max_steps", "9", "--temperature", "0.7"))
    with pytest.raises(ConfigError) as err:
        check_resume(cfg)
    assert "max_steps: 8 (saved) -> 9 (now)" in str(err.value)
    assert "temperature: 0.8 (saved) -> 0.7 (now)" in str(err.value)
    assert "--allow_config_change" in str(err.value)
    check_resume(cfg, allow_config_change=True)
    check_resume(parse_config(tiny(reference.parent, "--run_name", "r", "--num_generations", "5")))

    out = subprocess.run([sys.executable, "-m", "scl_hf.cli", "run",
                          *tiny(reference.parent, "--run_name", "r", "--max_steps", "9")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "max_steps: 8 (saved) -> 9 (now)" in out.stderr


def _run_until(args, marker: Path | None, timeout: float = 300) -> int:
    """Run the CLI loop in a subprocess; SIGKILL it as soon as ``marker`` exists (None: let it finish)."""
    proc = subprocess.Popen([sys.executable, "-m", "scl_hf.cli", "run", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if marker is not None and marker.exists():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    return proc.returncode


@pytest.mark.slow
def test_resume_after_sigkill_at_each_stage_gives_the_same_run(reference, tmp_path):
    args = tiny(tmp_path, "--run_name", "r")
    run_dir = tmp_path / "r"
    # each kill lands in the stage after the marker appears: training gen 0, sampling gen 0, training gen 1,
    # sampling gen 1
    for marker in ("gen_00/train_history.json", "gen_00/model", "gen_01/train_data", "gen_01/model"):
        code = _run_until(args, run_dir / marker)
        assert code in (-signal.SIGKILL, 0), code
    assert _run_until(args, None) == 0
    assert not list(run_dir.rglob(".tmp-*")) or all(p.parent.name.startswith("gen_") for p in run_dir.rglob(".tmp-*"))
    assert snapshot(run_dir) == snapshot(reference)


def test_half_written_generation_is_not_taken_for_a_complete_one(reference, tmp_path):
    args = tiny(tmp_path, "--run_name", "r")
    cfg = parse_config(args)
    run_loop(parse_config([*args, "--num_generations", "1"]))
    # a killed save of generation 1: partial folders under temporary names and no metrics.json
    gen1 = tmp_path / "r" / "gen_01"
    (gen1 / ".tmp-train_data").mkdir(parents=True)
    (gen1 / ".tmp-train_data" / "garbage.arrow").write_bytes(b"\0" * 10)
    (gen1 / ".tmp-metrics.json").write_text("{")
    run_loop(cfg)
    assert snapshot(tmp_path / "r") == snapshot(reference)


@pytest.mark.slow
def test_smoke_loop_under_two_cpu_processes(tmp_path):
    """Two processes train and sample together; only the main one writes, opens the Hub and publishes.

    HF_ENDPOINT points at a closed port: any Hub call that did not get the run's endpoint explicitly fails.
    The worker records, per process, every Hub client and server it creates.
    """
    # `accelerate launch --cpu` starts one process unless MPI is set up; --multi_gpu starts N with torchrun,
    # and ACCELERATE_USE_CPU makes them a gloo group of CPU processes.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once the socket is closed
    calls = tmp_path / "hub_calls.txt"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1",
           "HF_ENDPOINT": f"http://127.0.0.1:{closed}", "SCL_HF_TEST_HUB_CALLS": str(calls)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(port), str(ROOT / "tests" / "mp_loop_worker.py"),
           *tiny(tmp_path, "--run_name", "mp", "--publish", "true")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    threads = max(1, len(os.sched_getaffinity(0)) // 2)  # the cores shared by the launch's two processes
    assert re.search(rf"on cpu(:0)?, 2 process\(es\) x {threads} CPU thread\(s\)", out.stdout.splitlines()[0])
    assert ", publishing to http://127.0.0.1:" in out.stdout
    assert out.stdout.count("gen 00 |") == 1 and out.stdout.count("gen 01 |") == 1  # main process prints only
    for t in (0, 1):
        m = json.loads((tmp_path / "mp" / f"gen_{t:02d}" / "metrics.json").read_text())
        assert m["metrics"]["num_samples"] == 40 and m["data"]["num_rows"] == 40
        samples = load_from_disk(str(tmp_path / "mp" / f"gen_{t:02d}" / "samples"))
        assert len(samples) == 40
    records = calls.read_text().split()
    assert "server@0" in records and "client@0" in records  # the main process served and published
    assert all(r.endswith("@0") for r in records), records  # the other process touched no Hub
    from huggingface_hub import HfApi

    server = HubServer(tmp_path / "hub", port=0).start()
    try:
        tags = {t.name for t in HfApi(endpoint=server.url, token=False).list_repo_refs("scl-hf/mp").tags}
    finally:
        server.stop()
    assert tags == {"gen-00", "gen-01"}


def test_hub_errors_stop_every_process_before_training(tmp_path):
    """push_to_hub without a token fails on the main process, and the error reaches the other one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "home")}
    env.pop("HF_TOKEN", None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(port), str(ROOT / "scripts" / "loop.py"),
           *tiny(tmp_path, "--run_name", "fail", "--publish", "true", "--push_to_hub", "true")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode != 0
    assert out.stderr.count("no Hugging Face token was found") == 2, out.stderr[-3000:]  # both processes say why
    assert not (tmp_path / "fail" / "gen_00").exists()


# --- one owner, damaged files, a moved run, a full disk ------------------------------------------------------


HOLD_LOCK = """
import sys, time
from scl_hf.rundir import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_run_directory_has_one_owner_and_a_killed_owner_blocks_nothing(tmp_path, capsys):
    from scl_hf.cli import main
    from scl_hf.errors import RunDirError

    args = tiny(tmp_path, "--run_name", "owned", "--num_generations", "1")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "owned")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"owned is in use by another run \(PID {holder.pid}, lock "):
            run_loop(parse_config(args))
        assert main(["run", *args]) == 2
        assert f"in use by another run (PID {holder.pid}" in capsys.readouterr().err
        assert not (tmp_path / "owned" / "gen_00").exists()
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind, the lock does not
        holder.wait()
    assert (tmp_path / "owned" / ".lock").is_file()
    run_loop(parse_config(args))
    assert (tmp_path / "owned" / "gen_00" / "metrics.json").is_file()


@pytest.mark.parametrize("damage", ["", "{\"generation\": 1, \"metrics\": {", "{\"generation\": 1}", "[]"])
def test_a_damaged_completion_marker_is_measured_again(reference, tmp_path, damage, capsys):
    run_dir = tmp_path / "r"
    shutil.copytree(reference, run_dir)
    marker = run_dir / "gen_01" / "metrics.json"
    marker.write_text(damage)
    run_loop(parse_config(tiny(tmp_path, "--run_name", "r")))
    assert f"warning: {marker} is " in capsys.readouterr().out
    assert snapshot(run_dir) == snapshot(reference)


def test_other_damaged_stage_files_are_named(reference, tmp_path):
    from scl_hf.errors import RunDirError

    run_dir = tmp_path / "r"
    shutil.copytree(reference, run_dir)
    (run_dir / "gen_01" / "metrics.json").unlink()
    (run_dir / "gen_01" / "sampling.json").write_text("{\"num_samples\": ")
    with pytest.raises(RunDirError, match=r"cannot read .*gen_01/sampling.json: .*delete it"):
        run_loop(parse_config(tiny(tmp_path, "--run_name", "r")))
    (run_dir / "gen_01" / "sampling.json").unlink()
    shutil.rmtree(run_dir / "gen_01" / "samples")
    (run_dir / "gen_01" / "samples").mkdir()
    with pytest.raises(RunDirError, match=r"cannot read .*gen_01/samples .*delete the folder"):
        run_loop(parse_config(tiny(tmp_path, "--run_name", "r")))


def test_a_moved_run_resumes_without_allow_config_change(reference, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(reference, moved / "r")
    cfg = parse_config(tiny(moved, "--run_name", "r", "--num_generations", "3"))
    check_resume(cfg)
    run_loop(cfg)
    assert (moved / "r" / "gen_02" / "metrics.json").is_file()
    assert {k: v for k, v in snapshot(moved / "r").items() if k != "gen_02"} == snapshot(reference)


def test_a_full_disk_is_one_line_and_the_resume_is_clean(reference, tmp_path, monkeypatch, capsys):
    import errno

    import datasets

    from scl_hf.cli import main

    real_save = datasets.Dataset.save_to_disk

    def full_disk_at_samples_of_gen_01(self, path, *args, **kwargs):
        if "gen_01" in str(path) and "samples" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(self, path, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", full_disk_at_samples_of_gen_01)
    args = tiny(tmp_path, "--run_name", "r")
    assert main(["run", *args]) == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    [err] = [line for line in stderr.replace("\r", "\n").splitlines() if "error" in line]
    assert err.startswith("scl-hf run: error: no space left on device writing ") and "gen_01" in err
    assert "MiB free there; a generation of this run takes about" in err and "run the same command again" in err
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", real_save)
    assert main(["run", *args]) == 0
    assert snapshot(tmp_path / "r") == snapshot(reference)
