"""Sweeps: the file's runs and names, refused values, the local executor killed and resumed, the SLURM path."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit

from scl_hf import sweep as sweeps
from scl_hf.config import ConfigError
from scl_hf.sweep import command, export_results, load_sweep, run_sweep, slurm_parameters, status, write_results

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
TINY = ("dataset_size: 40\nnum_samples: 40\nheldout_size: 40\nmax_steps: 8\neval_steps: 4\nlogging_steps: 4\n"
        "warmup_steps: 2\nper_device_train_batch_size: 4\nmax_new_tokens: 60\npublish: false\n")


def sweep_file(tmp_path: Path, body: str) -> Path:
    (tmp_path / "recipes").mkdir(exist_ok=True)
    (tmp_path / "recipes" / "tiny.yaml").write_text(f"base: {SMOKE}\n{TINY}")
    (tmp_path / "recipes" / "tiny_balanced.yaml").write_text("base: tiny.yaml\ncycle: balanced\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(body)
    return path


GRID = """recipes: [recipes/tiny.yaml, recipes/tiny_balanced.yaml]
grid: {temperature: [0.8, 1.0]}
overrides: {num_generations: 2}
seeds: [0, 1]
max_parallel: 2
"""


def test_a_sweep_expands_to_named_runs_with_their_values(tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, GRID), tmp_path / "out")
    names = [run.name for run in sweep.runs]
    assert names[:4] == ["tiny-0.8-seed0", "tiny-0.8-seed1", "tiny-1.0-seed0", "tiny-1.0-seed1"]
    assert len(names) == 8 and names[-1] == "tiny_balanced-1.0-seed1"
    run = sweep.runs[-1]
    assert (run.config.cycle.cycle, run.config.sampling.temperature, run.config.training.seed) == ("balanced", 1.0, 1)
    assert run.config.loop.num_generations == 2 and run.config.run_dir == tmp_path / "out" / run.name
    assert run.point == {"temperature": 1.0} and run.recipe == "tiny_balanced"
    assert load_sweep(sweep_file(tmp_path, GRID)).folder == Path("runs") / "sweeps" / "sweep"
    # runs start replicate by replicate: every configuration's seed 0 first, in file order
    assert [run.name for run in sweeps.run_order(sweep)] == [
        "tiny-0.8-seed0", "tiny-1.0-seed0", "tiny_balanced-0.8-seed0", "tiny_balanced-1.0-seed0",
        "tiny-0.8-seed1", "tiny-1.0-seed1", "tiny_balanced-0.8-seed1", "tiny_balanced-1.0-seed1"]


@pytest.mark.parametrize(("body", "message"), [
    ("recipes: [recipes/tiny.yaml]\nexecuter: local\n", "unknown key 'executer' in .*allowed keys: recipes, grid"),
    ("recipes: []\n", "recipes must be a non-empty list of recipe files"),
    ("recipes: [recipes/tiny.yaml]\nexecutor: pbs\n", r"executor must be one of \('local', 'slurm'\), got 'pbs'"),
    ("recipes: [recipes/tiny.yaml]\ngrid: {temprature: [1.0]}\n",
     "unknown key 'temprature'.*did you mean temperature"),
    ("recipes: [recipes/tiny.yaml]\ngrid: {seed: [1, 2]}\n", "seed must be left to the sweep"),
    ("recipes: [recipes/tiny.yaml]\nseeds: [1, 1]\n", "seeds must be a non-empty list of distinct integers"),
    ("recipes: [recipes/tiny.yaml]\nmax_parallel: 0\n", "max_parallel must be an integer >= 1"),
    ("recipes: [recipes/tiny.yaml]\nslurm: {partitions: gpu}\n", "slurm must be a mapping with keys from"),
    ("recipes: [recipes/tiny.yaml, recipes/tiny.yaml]\n", "would both be named 'tiny-seed1337'"),
    ("recipes: [recipes/tiny.yaml]\noverrides: {temperature: 0.0}\n", "temperature must be a number > 0"),
    ("recipes: [recipes/tiny.yaml]\ngrid: {cycle: [full_synthetic]}\noverrides: {cycle: balanced}\n",
     r"overrides must be free of the grid's keys \(cycle\)"),
])
def test_a_bad_sweep_file_names_the_key(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(sweep_file(tmp_path, body), tmp_path / "out")


def sweep_cli(path: Path, out: Path, *extra: str, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "scl_hf.cli", "sweep", str(path), "--output_dir", str(out),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, **kwargs)


@pytest.mark.slow
def test_the_local_executor_runs_a_sweep_that_resumes_after_a_kill(tmp_path):
    path = sweep_file(tmp_path, GRID.replace("grid: {temperature: [0.8, 1.0]}\n", ""))  # 2 recipes x 2 seeds
    out = tmp_path / "out"
    sweep = load_sweep(path, out)
    proc = sweep_cli(path, out)
    deadline = time.time() + 300
    while not any((run.config.run_dir / "gen_00" / "metrics.json").exists() for run in sweep.runs):
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the runs it started, mid-way
    proc.wait()
    states = {state for _, state, _, _ in status(sweep)}
    assert "done" not in states or len(states) > 1  # killed before all four finished
    listed = subprocess.run([sys.executable, "-m", "scl_hf.cli", "sweep", str(path), "--output_dir", str(out),
                             "--status"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(listed) == 4 and all(line.split()[0] in ("done", "partial", "not") for line in listed)

    stdout, stderr = sweep_cli(path, out).communicate(timeout=600)
    assert "failed" not in stdout, stdout + stderr
    assert [state for _, state, _, _ in status(sweep)] == ["done"] * 4
    assert "tiny_balanced-seed1: gen 01 done (2/2)" in stdout  # a progress line per finished generation
    assert (out / "comparison" / "comparison.md").is_file()
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["run"] for r in rows} == {run.name for run in sweep.runs}
    assert {r["generation"] for r in rows} == {"0", "1"}
    div = [r for r in rows if r["block"] == "metrics" and r["metric"] == "diversity"]
    assert len(div) == 8 and all(0.0 <= float(r["value"]) <= 1.0 for r in div)
    before = (out / "results.csv").read_text()
    copied = export_results(sweep, tmp_path / "docs")
    names = {p.relative_to(tmp_path / "docs").as_posix() for p in copied}
    assert {"results.csv", "comparison/comparison.md", "tiny-seed0/config.yaml", "tiny-seed0/gen_01/metrics.json",
            "tiny-seed0/report.md"} <= names
    assert not [n for n in names if "/model" in n or "train_data" in n or "samples/" in n]  # no bulk
    again, _ = sweep_cli(path, out).communicate(timeout=300)
    assert "4 runs in" in again and ", 0 to run," in again  # a finished sweep does no work ...
    assert (out / "results.csv").read_text() == before  # ... and rewrites the same results


def test_the_slurm_path_submits_one_array_with_the_sweep_options(tmp_path, monkeypatch):
    body = ("recipes: [recipes/tiny.yaml]\noverrides: {num_generations: 1}\nseeds: [3]\nexecutor: slurm\n"
            "max_parallel: 8\nslurm: {partition: gpu, time: 90, gpus_per_task: 1, cpus_per_task: 4, "
            "num_processes: 2}\n")
    sweep = load_sweep(sweep_file(tmp_path, body), tmp_path / "out")
    assert slurm_parameters(sweep) == {"slurm_array_parallelism": 8, "nodes": 1, "tasks_per_node": 1,
                                       "slurm_partition": "gpu", "timeout_min": 90, "gpus_per_node": 1,
                                       "cpus_per_task": 4}
    [run] = sweep.runs
    assert command(sweep, run)[:5] == [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2"]
    bin_dir = tmp_path / "bin"  # submitit looks for srun before it writes a job script; nothing is submitted
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(**slurm_parameters(sweep))  # the real executor accepts every generated option
    script = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "uid")
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --gpus-per-node=1" in script
    assert "#SBATCH --cpus-per-task=4" in script and "#SBATCH --time=90" in script

    # the jobs themselves, through submitit's debug executor (in this process, as SLURM would run them)
    sweep.slurm.pop("num_processes")  # one process per run here: no accelerate launch needed
    failed = run_sweep(sweep, executor=submitit.AutoExecutor(folder=tmp_path / "debug", cluster="debug"),
                       out=lambda line: None)
    assert failed == [] and status(sweep) == [("tiny-seed3", "done", 1, 1)]
    report, table = write_results(sweep)  # no figures asked for: the comparison and the CSV
    assert report.is_file() and table.read_text().startswith("run,recipe,seed,generation,block,metric,value\n")


def test_every_shipped_sweep_file_loads():
    sweeps = sorted((SMOKE.parent / "sweeps").glob("*.yaml"))
    assert sweeps
    for path in sweeps:
        sweep = load_sweep(path, "/nonexistent/sweep")
        assert sweep.runs and len({run.name for run in sweep.runs}) == len(sweep.runs)
