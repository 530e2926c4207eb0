"""Shared pieces of the benchmark scripts: the machine line and writing results into docs/BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def machine() -> str:
    """``CPU: <model name>, <n> cores, <t> torch threads`` for the command line of a benchmark entry."""
    import torch

    try:
        name = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"CPU: {name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def append_entry(path: Path, heading: str, entry: str) -> None:
    """Add ``entry`` at the end of the ``heading`` section of the Markdown file, creating either if missing."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if heading not in text:
        text = text.rstrip("\n") + f"\n\n{heading}\n"
    end = text.find("\n## ", text.index(heading) + len(heading))
    head, tail = (text, "") if end == -1 else (text[:end], text[end:])
    path.write_text(head.rstrip("\n") + "\n" + entry.rstrip("\n") + "\n" + tail, encoding="utf-8")


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
