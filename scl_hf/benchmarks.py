"""Shared pieces of the benchmark scripts (``scripts/bench_*.py``): the facts line of a run, the BENCHMARKS.md writer.

Every script prints its table; only with ``--write`` does it also put the table into its section of
docs/BENCHMARKS.md. A run records measured facts only: the command, the date, ``machine()``, what it
ran with, and the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path


def machine() -> str:
    """``CPU: <model name>, <n> cores; Python <version>``: the machine a benchmark ran on (cores usable by it)."""
    try:
        name = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        name = platform.processor() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU: {name}, {cores} cores; Python {platform.python_version()}"


def torch_stack() -> str:
    """``torch <version>, transformers <version>; torch threads: <n>``, for the benchmarks that run the model."""
    import torch
    import transformers

    versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
    return f"{versions}; torch threads: {torch.get_num_threads()}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. ``1.57 1.42 2.11``."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def facts(script: str, argv: list[str] | None, load_before: str, *details: str) -> str:
    """The line under a run's heading: command, date, ``machine()``, ``details``, load average before and after.

    ``script``: the script's ``__file__``; ``argv``: its ``main(argv)`` argument (None: the command line).
    """
    args = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", f"scripts/{Path(script).name}", *args])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "; ".join([f"Command: `{command}`", date, machine(), *details,
                      f"load average (1, 5, 15 min) {load_before} before, {load_average()} after."])


def run_entry(script: str, argv: list[str] | None, load_before: str, table: str, *details: str) -> str:
    """One run for a log of runs (``report(..., append=True)``): a ``### Run of <date>`` heading, the
    ``facts`` line, the table."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([f"### Run of {date}", "", facts(script, argv, load_before, *details), "", table, ""])


def add_output_arguments(parser: argparse.ArgumentParser, default: Path) -> None:
    """``--write`` (off: print only) and ``--output`` (the Markdown file ``--write`` writes, ``default``)."""
    parser.add_argument("--write", action="store_true", help="also write the result into --output")
    parser.add_argument("--output", type=Path, default=default, help="the Markdown file --write updates")


def report(text: str, args: argparse.Namespace, heading: str, *, append: bool) -> None:
    """Print ``text``; with ``args.write``, also write it into the ``heading`` section of ``args.output``.

    ``append``: add ``text`` at the end of the section (a log of runs); else ``text`` is the whole section
    (it starts with ``heading``) and replaces the previous one.
    """
    print(text)
    if not args.write:
        return
    if append:
        append_entry(args.output, heading, text)
    else:
        replace_section(args.output, heading, text)


def append_entry(path: Path, heading: str, entry: str) -> None:
    """Add ``entry`` at the end of the ``heading`` section of the Markdown file (after a blank line, so that a
    heading that opens the entry follows a table cleanly), creating either if missing."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if heading not in text:
        text = text.rstrip("\n") + f"\n\n{heading}\n"
    end = text.find("\n## ", text.index(heading) + len(heading))
    head, tail = (text, "") if end == -1 else (text[:end], text[end:])
    path.write_text(head.rstrip("\n") + "\n\n" + entry.rstrip("\n") + "\n" + tail, encoding="utf-8")


def replace_section(path: Path, heading: str, text: str) -> None:
    """Replace the ``heading`` section (``text`` starts with the heading) of the file; other sections stay."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = old.find(heading)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + text + ("" if end < 0 else old[end:])
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
