"""The benchmark scripts' shared pieces: the facts line, print-only by default, and the BENCHMARKS.md writer."""

import argparse
import os
import platform
import re
import tarfile
from pathlib import Path

import pytest
from helpers import load_script

from scl_hf.benchmarks import add_output_arguments, append_entry, facts, machine, replace_section, report

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("bench_*.py"))


def test_sections_are_appended_to_and_replaced_without_touching_others(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    append_entry(path, "## A", "run 1")
    replace_section(path, "## B", "## B\n\nold")
    append_entry(path, "## A", "run 2")
    replace_section(path, "## B", "## B\n\nnew")
    assert path.read_text() == "# Benchmarks\n\n## A\n\nrun 1\n\nrun 2\n\n## B\n\nnew\n"


def parse(argv, path):
    parser = argparse.ArgumentParser()
    add_output_arguments(parser, path)
    return parser.parse_args(argv)


def test_report_prints_and_writes_only_with_write(tmp_path, capsys):
    path = tmp_path / "BENCHMARKS.md"
    report("## A\n\ntable 1", parse([], path), "## A", append=False)
    assert capsys.readouterr().out == "## A\n\ntable 1\n"
    assert not path.exists()

    report("## A\n\ntable 2", parse(["--write"], path), "## A", append=False)
    report("run 3", parse(["--write"], path), "## A", append=True)
    assert capsys.readouterr().out == "## A\n\ntable 2\nrun 3\n"
    assert path.read_text() == "# Benchmarks\n\n## A\n\ntable 2\n\nrun 3\n"

    other = tmp_path / "other.md"
    report("run 4", parse(["--write", "--output", str(other)], path), "## A", append=True)
    assert other.read_text() == "# Benchmarks\n\n## A\n\nrun 4\n"
    assert path.read_text() == "# Benchmarks\n\n## A\n\ntable 2\n\nrun 3\n"


def test_facts_line_holds_command_date_machine_details_and_load():
    line = facts("/anywhere/scripts/bench_x.py", ["--steps", "2"], "1.00 2.00 3.00", "torch 9 (2 threads)")
    assert re.fullmatch(r"Command: `python scripts/bench_x\.py --steps 2`; \d{4}-\d\d-\d\d \d\d:\d\d UTC; (.+); "
                        r"torch 9 \(2 threads\); load average \(1, 5, 15 min\) 1\.00 2\.00 3\.00 before, "
                        r"\d+\.\d\d \d+\.\d\d \d+\.\d\d after\.", line).group(1) == machine()
    assert re.fullmatch(rf"CPU: .+, \d+ cores; Python {re.escape(platform.python_version())}", machine())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_bench_script_prints_only_unless_told_to_write(script):
    parser = load_script(script.stem).make_parser()
    default = parser.parse_args([])
    assert default.write is False
    assert default.output == script.parents[1] / "docs" / "BENCHMARKS.md"
    assert parser.parse_args(["--write"]).write is True


def test_the_bench_scripts_are_covered():
    assert [p.name for p in SCRIPTS] == ["bench_correct.py", "bench_early_stopping.py", "bench_eval.py",
                                         "bench_gpu.py", "bench_hub.py", "bench_metric.py", "bench_sample.py",
                                         "bench_select.py", "bench_threads.py", "bench_train.py"]


def test_bench_eval_prints_one_row_per_recipe(tmp_path, capsys):
    recipe = tmp_path / "small.yaml"
    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    recipe.write_text(f"base: {smoke}\nheldout_size: 50\nnum_samples: 40\ndataset_size: 60\n")
    module = load_script("bench_eval")
    module.main(["--configs", str(recipe), "--repeats", "1"])
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| small.yaml")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["small.yaml", "3x96, 0.35M", "50", "40", "60"]
    eval_s, parts = float(cells[7]), (float(cells[5]), float(cells[6]))
    assert eval_s == pytest.approx(parts[0] + 2 * parts[1], abs=2e-3)  # H once, S_t twice


def test_bench_correct_measures_realistic_samples(capsys):
    module = load_script("bench_correct")
    samples = module.realistic_samples(400)
    assert samples == module.realistic_samples(400)  # seeded
    module.main(["--samples", "400", "--subset", "2"])
    row = capsys.readouterr().out.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    kept, one, two, dropped = (int(c.replace(",", "")) for c in cells[3:7])
    assert cells[0] == "400" and kept + one + two + dropped == 400 and one > two


def test_bench_select_keeps_half_of_each_pool_with_each_method(capsys):
    module = load_script("bench_select")
    pools = module.pools(300)
    assert len(set(pools["distinct"])) == 300 and len(set(pools["30% copies"])) < 250
    assert module.closest_pair(["True", "True"]) == 0.0 and module.closest_pair(["True", "not True"]) == 0.5
    module.main(["--pool", "300"])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith(("| distinct", "| 30% copies"))]
    assert [(r[0], r[2], r[3]) for r in rows] == [(pool, method, "150") for pool in ("distinct", "30% copies")
                                                  for method in ("novelty", "likelihood", "random")]
    novelty, _, null = rows[3:]
    assert novelty[6] == "1.000" and float(novelty[7]) > float(null[7]) == 0.0  # copies: novelty keeps none


def tiny_recipe(tmp_path: Path) -> Path:
    """The smoke config shrunk to seconds per generation."""
    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"base: {smoke}\ndataset_size: 40\nnum_samples: 40\nheldout_size: 40\nmax_steps: 12\n"
                      "eval_steps: 2\nlogging_steps: 2\nwarmup_steps: 2\nper_device_train_batch_size: 4\n"
                      "max_new_tokens: 60\n")
    return recipe


def test_bench_early_stopping_compares_the_same_run_trained_to_the_end(tmp_path, capsys):
    load_script("bench_early_stopping").main(["--configs", str(tiny_recipe(tmp_path)), "--generations", "2",
                                              "--patience", "1"])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| tiny.yaml")]
    assert [r[1] for r in rows] == ["0", "1", "all"]
    full, early = (int(x) for x in rows[0][2].split(" / "))
    assert full == 12 and 1 <= early <= 12 and rows[0][8] in ("yes", "no")
    if early == 12:  # never stale twice in a row: the same weights, the same samples
        assert rows[0][8] == "yes"


def test_bench_threads_runs_each_layout_to_the_end(tmp_path, capsys):
    load_script("bench_threads").main(["--config", str(tiny_recipe(tmp_path)), "--generations", "1"])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and " x " in line.split("|")[1]]
    cores = len(os.sched_getaffinity(0))
    assert [(int(r[1]), int(r[2]), int(r[3])) for r in rows] == [(1, cores, 1), (cores, 1, cores)]
    assert all(float(r[5]) > 0 for r in rows)


@pytest.mark.slow
def test_gpu_check_runs_its_steps_in_cpu_mode(tmp_path):
    """The GPU machine's one command, at tiny shapes on a CPU: it cannot rot between the rare GPU sessions."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    # a budget no CPU run nears, so that a loaded machine skips no row (the deadline logic is for the GPU call)
    proc = subprocess.run(["bash", str(script), "--cpu", "--out", str(out), "--budget", "3000"], capture_output=True,
                          text=True, env={**env, "TMPDIR": str(tmp_path)}, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = [line.split("|")[1].strip() for line in (out / "bench.md").read_text().splitlines()[2:]]
    assert rows == ["training, no, eager", "sampling 50 expressions, model on the device",
                    "sampling 50 expressions, reloaded as the loop does",
                    "one generation end to end (smoke.yaml, eager)", "1 run(s) at once, one generation each",
                    "2 run(s) at once, one generation each"]
    assert "cuda False" in (out / "env.txt").read_text()
    # the science probe: 4 seeds x 2 generations at the smoke shape, its small results only
    science = (out / "science" / "science.md").read_text().splitlines()[2:]
    assert [row.split("|")[1:3] for row in science] == [[f" smoke-seed{s} ", f" {t} "] for s in range(4)
                                                        for t in (0, 1)]
    with tarfile.open(out / "science" / "small_results.tar.gz") as tar:
        names = tar.getnames()
    assert "smoke-seed3/gen_01/metrics.json" in names and not any("/model/model" in n for n in names)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
        ["bench.md", "check.log", "env.txt", "science.log", "science.md", "small_results.tar.gz"])
    bad = subprocess.run(["bash", str(script), "--fast"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert "unknown argument --fast (allowed: --cpu, --out DIR, --budget SECONDS)" in bad.stderr
