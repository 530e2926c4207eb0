"""Hermetic test environment: set before any Hugging Face library is imported by a test module.

Every cache goes to a throw-away folder and nothing phones home. Tests that need a Hub start the
embedded one and point the libraries at it themselves.
"""

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="scl_hf_tests_hf_home_")
os.environ["HF_HOME"] = _HOME
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["MPLBACKEND"] = "Agg"
os.environ.pop("HF_TOKEN", None)
