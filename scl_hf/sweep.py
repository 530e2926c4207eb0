"""Sweeps: many runs from one file, on this machine or a SLURM cluster, through submitit.

A sweep file is flat YAML like a recipe::

    recipes: [../cpu/base.yaml]          # recipe files, relative to the sweep file
    grid: {cycle: [full_synthetic, balanced]}   # key -> values; every combination is a run
    overrides: {num_generations: 15}     # key -> value, for every run
    seeds: [0, 1, 2]                     # the training ``seed`` of each replicate
    executor: local                      # local | slurm
    max_parallel: 2                      # runs at once (local), or the array's parallelism (slurm)
    slurm: {partition: gpu, time: 240}   # SLURM options (SLURM_OPTIONS), passed through to submitit
    figures: [...]                       # figures for questions: configurations x measures (scl_hf.figures)

Each run is an ordinary run directory ``<sweep folder>/<name>``, named ``<recipe>-<grid values>-seed<k>``
(``<recipe>-seed<k>`` without a grid); its resolved config is written to ``<sweep folder>/configs/<name>.yaml``
and run by ``scl-hf run --config`` in its own process. A run whose generations are all complete is skipped, an
interrupted one resumes (the loop resumes), so re-running a sweep continues it. Runs start replicate by
replicate (every configuration's first seed, then the second...), so a sweep stopped part-way has whole seeds.
``executor: local`` keeps ``max_parallel`` runs going at once through submitit's local executor, each with its
share of the CPU cores (``torch_num_threads``) and, on a machine with GPUs, one GPU per run round robin (several
runs per GPU when there are more runs than GPUs); ``executor: slurm`` submits one job array. When every run is
complete the sweep writes ``comparison/`` (the comparison report: seeds grouped, bootstrap bands), ``figures/``
(the figures and tables the sweep file's ``figures`` ask for: a few configurations per question, with intervals;
``scl_hf.figures``) and ``results.csv``: one row per run x generation x metric (the numbers of each
``metrics.json``), what people load into pandas; ``--report`` writes them from the runs complete so far.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scl_hf.config import (
    KEYS,
    Config,
    ConfigError,
    build_config,
    invalid,
    read_mapping,
    read_yaml,
    save_config,
    unknown_key,
)
from scl_hf.errors import SclHfError
from scl_hf.figures import FigureSpec, parse_figures, write_figures
from scl_hf.rundir import SMALL_FILES, is_complete

SWEEP_KEYS = ("recipes", "grid", "overrides", "seeds", "executor", "max_parallel", "slurm", "figures")
EXECUTORS = ("local", "slurm")
# sweep file's slurm key -> submitit's parameter; num_processes: `accelerate launch` processes per run
SLURM_OPTIONS = {"partition": "slurm_partition", "time": "timeout_min", "gpus_per_task": "gpus_per_node",
                 "cpus_per_task": "cpus_per_task", "mem_gb": "mem_gb", "account": "slurm_account",
                 "qos": "slurm_qos", "constraint": "slurm_constraint", "num_processes": None}
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local executor kills a job after its timeout (default 2 minutes)


@dataclass
class SweepRun:
    name: str
    config: Config
    recipe: str  # the recipe file's stem
    point: dict  # the grid values of this run, key -> value


@dataclass
class Sweep:
    path: Path
    folder: Path
    runs: list[SweepRun]
    executor: str = "local"
    max_parallel: int = 1
    slurm: dict = field(default_factory=dict)
    figures: list[FigureSpec] = field(default_factory=list)  # the figures for questions (scl_hf.figures)


def _slug(value: object) -> str:
    """A grid value as part of a folder name: ``0.5``, ``verified+dedup``; no slashes or spaces."""
    return re.sub(r"[^A-Za-z0-9._+=]", "_", str(value))


def load_sweep(path: str | Path, output_dir: str | Path | None = None) -> Sweep:
    """The runs of the sweep file ``path``, validated; their folder is ``output_dir`` (default
    ``runs/sweeps/<sweep file stem>``)."""
    path = Path(path).resolve()
    raw = read_mapping(path, "sweep file")
    for key in raw:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"unknown key {key!r} in {path}; allowed keys: {', '.join(SWEEP_KEYS)}")
    recipes = raw.get("recipes")
    if not isinstance(recipes, list) or not recipes or not all(isinstance(r, str) for r in recipes):
        raise invalid("recipes", "a non-empty list of recipe files", recipes)
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise invalid("grid", "a mapping of config key -> non-empty list of values", grid)
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise invalid("overrides", "a mapping of config key -> value", overrides)
    for key in [*grid, *overrides]:
        if key not in KEYS:
            raise unknown_key(str(key), f"{path} (grid/overrides)")
        if key in ("seed", "run_name", "output_dir"):
            raise invalid(key, "left to the sweep (seeds name the replicates; the sweep names and places runs)", key)
    both = set(grid) & set(overrides)
    if both:
        raise invalid("overrides", f"free of the grid's keys ({', '.join(sorted(both))})", overrides)
    seeds = raw.get("seeds", [1337])
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise invalid("seeds", "a non-empty list of distinct integers >= 0", seeds)
    executor = raw.get("executor", "local")
    if executor not in EXECUTORS:
        raise invalid("executor", f"one of {EXECUTORS}", executor)
    max_parallel = raw.get("max_parallel", 1)
    if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1:
        raise invalid("max_parallel", "an integer >= 1", max_parallel)
    slurm = raw.get("slurm") or {}
    if not isinstance(slurm, dict) or any(k not in SLURM_OPTIONS for k in slurm):
        raise invalid("slurm", f"a mapping with keys from {tuple(SLURM_OPTIONS)}", slurm)

    folder = Path(output_dir) if output_dir is not None else Path("runs") / "sweeps" / path.stem
    runs, names = [], set()
    for recipe in recipes:
        recipe_path = path.parent / recipe
        base = read_yaml(recipe_path)
        for values in itertools.product(*grid.values()):
            point = dict(zip(grid, values, strict=True))
            for seed in seeds:
                name = "-".join([recipe_path.stem, *map(_slug, values), f"seed{seed}"])
                if name in names:
                    raise ConfigError(f"two runs of {path} would both be named {name!r}: rename a recipe file")
                names.add(name)
                cfg = build_config({**base, **point, **overrides, "seed": seed, "run_name": name,
                                    "output_dir": str(folder)})
                runs.append(SweepRun(name, cfg, recipe_path.stem, point))
    figures = parse_figures(raw.get("figures"), [Path(r).stem for r in recipes])
    return Sweep(path, folder, runs, executor, max_parallel, slurm, figures)


def generations_done(run: SweepRun) -> int:
    """Complete generations of ``run`` (the loop's rule, ``rundir.is_complete``), read from its run directory alone."""
    return sum(is_complete(run.config.run_dir, t) for t in range(run.config.loop.num_generations))


def status(sweep: Sweep) -> list[tuple[str, str, int, int]]:
    """``(name, "done" | "partial" | "not started", generations done, generations)`` per run."""
    rows = []
    for run in sweep.runs:
        done, total = generations_done(run), run.config.loop.num_generations
        state = "done" if done == total else "partial" if run.config.run_dir.exists() else "not started"
        rows.append((run.name, state, done, total))
    return rows


def config_path(sweep: Sweep, run: SweepRun) -> Path:
    return sweep.folder / "configs" / f"{run.name}.yaml"


def command(sweep: Sweep, run: SweepRun, threads: int | None = None) -> list[str]:
    """How ``run`` is started: ``scl-hf run`` on its config (``accelerate launch`` when slurm asks for several
    processes per run)."""
    cli = ["-m", "scl_hf.cli", "run", "--config", str(config_path(sweep, run))]
    if threads is not None:
        cli += ["--torch_num_threads", str(threads)]
    processes = int(sweep.slurm.get("num_processes", 1)) if sweep.executor == "slurm" else 1
    if processes > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes), *cli]
    return [sys.executable, *cli]


def slurm_parameters(sweep: Sweep) -> dict:
    """The submitit parameters of the sweep's job array: its SLURM options renamed, and the parallelism."""
    params = {"slurm_array_parallelism": sweep.max_parallel, "nodes": 1, "tasks_per_node": 1}
    for key, value in sweep.slurm.items():
        if SLURM_OPTIONS[key] is not None:
            params[SLURM_OPTIONS[key]] = value
    return params


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no torch CUDA build: a CPU machine
        return 0


class Progress:
    """One line per newly finished generation of any run (``<run>: gen 03 done (4/15)``)."""

    def __init__(self, runs: list[SweepRun], out=print):
        self.runs, self.out = runs, out
        self.seen = {run.name: generations_done(run) for run in runs}

    def poll(self) -> None:
        for run in self.runs:
            done = generations_done(run)
            for t in range(self.seen[run.name], done):
                self.out(f"{run.name}: gen {t:02d} done ({t + 1}/{run.config.loop.num_generations})")
            self.seen[run.name] = max(done, self.seen[run.name])


def run_order(sweep: Sweep) -> list[SweepRun]:
    """The runs not yet done, replicate by replicate: every configuration's first seed, then every second seed...
    A sweep stopped part-way then holds whole replicates of every configuration rather than every seed of a few
    (partial runs still come in their replicate's turn, and resume)."""
    seeds = list(dict.fromkeys(run.config.training.seed for run in sweep.runs))
    todo = [run for run in sweep.runs if generations_done(run) < run.config.loop.num_generations]
    return sorted(todo, key=lambda run: seeds.index(run.config.training.seed))  # stable: file order within a seed


def run_sweep(sweep: Sweep, executor=None, poll_s: float = 2.0, out=print) -> list[str]:
    """Run every run not yet done; returns the names of runs that failed (empty: all done).

    ``executor``: a submitit executor to use instead of the sweep's own (tests pass submitit's debug executor).
    """
    import submitit

    for run in sweep.runs:
        path = config_path(sweep, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_config(run.config, path)
    todo = run_order(sweep)
    out(f"sweep {sweep.path.name}: {len(sweep.runs)} runs in {sweep.folder}, {len(todo)} to run, "
        f"executor {sweep.executor}, {sweep.max_parallel} at once")
    progress = Progress(sweep.runs, out)
    failed: list[str] = []
    if sweep.executor == "slurm" or executor is not None:
        if executor is None:
            executor = submitit.AutoExecutor(folder=sweep.folder / "submitit", cluster="slurm")
            executor.update_parameters(name=sweep.path.stem, **slurm_parameters(sweep))
        with executor.batch():
            jobs = [(run, executor.submit(submitit.helpers.CommandFunction(command(sweep, run)))) for run in todo]
        for run, job in jobs:
            try:
                job.result()
            except Exception as err:  # a failed run is reported, the others go on
                failed.append(run.name)
                out(f"{run.name}: failed ({type(err).__name__}: {str(err)[-500:]})")
            progress.poll()
        return failed

    threads = max(1, _cores() // sweep.max_parallel)
    gpus = _gpus()
    local = submitit.LocalExecutor(folder=sweep.folder / "submitit")
    pending, active, slot = list(todo), [], 0
    while pending or active:
        while pending and len(active) < sweep.max_parallel:
            run = pending.pop(0)
            params = {"timeout_min": LOCAL_TIMEOUT_MIN}
            if gpus:  # round robin over the GPUs; several runs may share one
                params.update(gpus_per_node=1, visible_gpus=[slot % gpus])
            slot += 1
            local.update_parameters(**params)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            active.append((run, local.submit(submitit.helpers.CommandFunction(command(sweep, run, threads),
                                                                              env=env))))
        time.sleep(poll_s)
        progress.poll()
        for run, job in [a for a in active if a[1].done()]:
            active.remove((run, job))
            try:
                job.result()
            except Exception as err:
                failed.append(run.name)
                out(f"{run.name}: failed ({type(err).__name__}: {str(err)[-500:]})")
    progress.poll()
    return failed


def complete_runs(sweep: Sweep) -> list[SweepRun]:
    return [run for run in sweep.runs if generations_done(run) == run.config.loop.num_generations]


def sweep_command(sweep: Sweep) -> str:
    """The command that runs this sweep, with the sweep file relative to the working directory where it can be."""
    try:
        path = sweep.path.relative_to(Path.cwd())
    except ValueError:
        path = sweep.path
    return f"scl-hf sweep {path}"


def write_results(sweep: Sweep) -> list[Path]:
    """From the runs complete so far (all of them at the end of a sweep): ``comparison/`` (the comparison report),
    ``figures/`` (the sweep file's figures, ``scl_hf.figures``) and ``results.csv``: one row per run x generation
    x number of its ``metrics.json`` (``block`` like ``metrics`` or ``data.curation``, ``metric``, ``value``).
    Returns the files written."""
    from scl_hf.report import write_comparison
    from scl_hf.runs import load_run

    runs = complete_runs(sweep)
    if not runs:
        raise SclHfError(f"no run of {sweep.path.name} is complete yet in {sweep.folder}: nothing to report")
    loaded = {run.name: load_run(run.config.run_dir) for run in runs}  # each run read once for all three
    written = [write_comparison(list(loaded.values()), sweep.folder / "comparison")]
    missing = [run.name for run in sweep.runs if run.name not in loaded]
    figures = write_figures(sweep.figures, runs, loaded, missing, sweep.folder / "figures", sweep_command(sweep))
    written += [figures] if figures is not None else []
    grid_keys = sorted({key for run in sweep.runs for key in run.point})
    table = sweep.folder / "results.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "recipe", *grid_keys, "seed", "generation", "block", "metric", "value"])
        for run in runs:
            for record in loaded[run.name].generations:  # each generation's metrics.json, as read once above
                for block, metric, value in _numbers(record):
                    writer.writerow([run.name, run.recipe, *[run.point.get(k, "") for k in grid_keys],
                                     run.config.training.seed, record["generation"], block, metric, value])
    return [*written, table]


def _numbers(record: dict, prefix: str = ""):
    """``(block, key, value)`` for every number of a metrics.json, nested blocks dotted (``data.curation``)."""
    for key, value in record.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and prefix:
            yield prefix, key, value
        elif isinstance(value, dict):
            yield from _numbers(value, f"{prefix}.{key}" if prefix else key)


def export_results(sweep: Sweep, dest: str | Path) -> list[Path]:
    """Copy the small results of the sweep into ``dest`` (for a repository): per complete run its ``SMALL_FILES``
    (configs, metrics, reports and figures; never models or datasets; a partial run waits until it is complete),
    and the sweep's ``comparison/``, ``figures/`` and ``results.csv`` when written. Files already in ``dest`` are
    replaced, others left; returns the files copied."""
    dest = Path(dest)
    copied = []
    sources = [(run.config.run_dir, dest / run.name, SMALL_FILES) for run in complete_runs(sweep)]
    sources.append((sweep.folder, dest, ("results.csv", "comparison/*", "figures/*")))
    for root, target, patterns in sources:
        for pattern in patterns:
            for path in sorted(root.glob(pattern)):
                if path.is_file():
                    out = target / path.relative_to(root)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
                    copied.append(out)
    return copied
