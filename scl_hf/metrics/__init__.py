"""The ``boolean_expressions`` evaluate module and what its Hub Space is made of.

``METRIC_DIR`` is the module folder (script, metric card, ``app.py``, ``requirements.txt``); the
numbers come from :func:`scl_hf.measures.compute_metrics`. The script imports ``measures.py``,
``expressions.py``, ``diversity.py`` and ``distribution.py`` by top-level relative imports, which
evaluate resolves to files next to the script: in the folder they are symbolic links to the package's modules (so
``evaluate.load(str(METRIC_DIR))`` works offline), and ``space_files`` lists what a Space gets,
the package's own files copied at publish time. One source, no copy to keep in step.
"""

from __future__ import annotations

from pathlib import Path

from scl_hf.measures import compute_metrics

__all__ = ["METRIC_DIR", "METRIC_NAME", "SPACE_MODULES", "compute_metrics", "space_files"]

METRIC_NAME = "boolean_expressions"
METRIC_DIR = Path(__file__).parent / METRIC_NAME
# the package modules the script imports
SPACE_MODULES = ("measures.py", "expressions.py", "diversity.py", "distribution.py")
_CARD_FILES = (f"{METRIC_NAME}.py", "README.md", "app.py", "requirements.txt")


def space_files() -> dict[str, Path]:
    """``{path in the Space: file on disk}``: the module folder's files and the package modules it imports."""
    package = Path(__file__).resolve().parent.parent
    return {**{name: METRIC_DIR / name for name in _CARD_FILES}, **{name: package / name for name in SPACE_MODULES}}
