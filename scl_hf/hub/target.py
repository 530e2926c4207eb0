"""Where a run publishes: the real Hub or the embedded one, decided once at process start.

huggingface_hub, datasets and evaluate read ``HF_ENDPOINT`` when they are imported, and
transformers keeps one client whose endpoint is fixed at first use, so ``configure_hub`` must run
before any of them is imported (this module imports none of them). The decision:

- ``publish: false``: no target (the run directory still holds everything).
- ``push_to_hub: true`` and a token configured (``HF_TOKEN`` or the cached ``hf auth login``): the
  real Hub (or whatever ``HF_ENDPOINT`` already names), with Xet uploads left on.
- otherwise: the embedded Hub (``scl_hf.hub.server``) started in this process on a free loopback
  port, its store at ``embedded_hub_root`` or ``<output_dir>/hub``; ``HF_ENDPOINT`` points at it and
  ``HF_HUB_DISABLE_XET=1`` (it speaks git-LFS, not Xet).

Under ``accelerate launch`` only the main process (``RANK`` and ``LOCAL_RANK`` unset or 0) starts the
server; it writes ``<root>/server.json`` and the other processes read the URL from there, so every
process makes the same decision and points at the same endpoint.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from scl_hf.config import Config
    from scl_hf.hub.server import HubServer

REAL_ENDPOINT = "https://huggingface.co"
DEFAULT_NAMESPACE = "scl-hf"  # model repo "scl-hf/<run_name>" unless hub_model_id says otherwise
METRIC_NAME = "boolean_expressions"  # the metric Space is "<namespace of the model repo>/boolean_expressions"
SERVER_FILE = "server.json"  # in the store root: {"url": ..., "pid": ...} of the server the main process started
FOLLOWER_WAIT_SECONDS = 120.0  # how long a non-main process waits for the main process's server


@dataclass
class HubTarget:
    """A run's Hub: endpoint, token, repo ids, and the embedded server when this process runs it."""

    endpoint: str
    token: str | None  # None on the embedded Hub (it needs none unless served with --token)
    model_repo_id: str
    dataset_repo_id: str
    embedded: bool
    server: HubServer | None = field(default=None, repr=False)
    metric_space: dict | None = field(default=None, repr=False)  # set once this process has published the Space

    @property
    def space_repo_id(self) -> str:
        """The metric's Space: ``evaluate.load(target.space_repo_id)``."""
        return f"{self.model_repo_id.split('/')[0]}/{METRIC_NAME}"

    def stop(self) -> None:
        """Stop the embedded server this process started (no-op otherwise)."""
        if self.server is not None:
            server_file = self.server.store.root / SERVER_FILE
            try:
                if json.loads(server_file.read_text()).get("url") == self.server.url:
                    server_file.unlink()
            except (OSError, ValueError):
                pass
            self.server.stop()
            self.server = None


def find_token() -> str | None:
    """The token huggingface_hub would use (``HF_TOKEN``, then the login file), read without importing it."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
        path = os.environ.get("HF_TOKEN_PATH") or os.path.join(os.path.expanduser(os.path.expandvars(home)), "token")
        try:
            token = Path(os.path.expanduser(os.path.expandvars(path))).read_text()
        except OSError:
            return None
    token = token.replace("\r", "").replace("\n", "").strip()
    return token or None


def is_main_process() -> bool:
    """True outside ``accelerate launch`` and on its global rank 0 (read from the launcher's environment)."""
    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def uses_xet(endpoint: str) -> bool:
    """Whether uploads to ``endpoint`` go through Xet: the real Hub's do; the embedded Hub speaks git-LFS only."""
    host = (urlsplit(endpoint).hostname or "").lower()
    return host in ("huggingface.co", "hf.co") or host.endswith(".huggingface.co")


def point_libraries_at(endpoint: str, *, xet: bool) -> None:
    """Make every Hugging Face library use ``endpoint``: the environment, and the modules already imported."""
    endpoint = endpoint.rstrip("/")
    os.environ["HF_ENDPOINT"] = endpoint
    if not xet:
        os.environ["HF_HUB_DISABLE_XET"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.ENDPOINT = endpoint
        constants.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        host = urlsplit(endpoint).hostname
        if host:
            constants.HF_URL_HOSTS = frozenset(constants.HF_URL_HOSTS | {host.lower()})
        if not xet:
            constants.HF_HUB_DISABLE_XET = True
    hf_api = sys.modules.get("huggingface_hub.hf_api")
    if hf_api is not None:
        hf_api.api.endpoint = endpoint  # the client behind huggingface_hub.create_repo(...) and friends
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_ENDPOINT = endpoint
        datasets_config.HUB_DATASETS_URL = endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
    evaluate_config = sys.modules.get("evaluate.config")
    if evaluate_config is not None:
        evaluate_config.HF_ENDPOINT = endpoint
        evaluate_config.HF_LIST_ENDPOINT = endpoint + "/api/spaces?filter={type}"
        evaluate_config.HUB_EVALUATE_URL = endpoint + "/spaces/{path}/resolve/{revision}/{name}"
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
        transformers_hub._hf_api = None  # rebuilt with the new endpoint at next use


def start_embedded_hub(root: str | Path, token: str | None = None) -> HubServer:
    """Start an embedded Hub serving ``root`` on a free loopback port, from a daemon thread of this process."""
    from scl_hf.hub.server import HubServer

    return HubServer(root, port=0, token=token).start()


def record_embedded_hub(server: HubServer) -> None:
    """Write ``<root>/server.json`` so that the other processes of a launch find the leader's server."""
    record = server.store.root / SERVER_FILE
    tmp = record.with_name(f".{SERVER_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps({"url": server.url, "pid": os.getpid()}))
    os.replace(tmp, record)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/whoami-v2", timeout=2.0) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for_embedded_hub(root: str | Path, timeout: float = FOLLOWER_WAIT_SECONDS) -> str | None:
    """The URL of a live embedded Hub serving ``root`` (from its server.json), waiting up to ``timeout`` s."""
    record = Path(root) / SERVER_FILE
    deadline = time.monotonic() + timeout
    while True:
        try:
            url = json.loads(record.read_text())["url"]
        except (OSError, ValueError, KeyError, TypeError):
            url = None
        if url and _answers(url):
            return url
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.25)


def repo_ids(cfg: Config) -> tuple[str, str]:
    """``(model repo id, dataset repo id)`` of a run."""
    model = cfg.hub.hub_model_id or f"{DEFAULT_NAMESPACE}/{cfg.loop.run_name}"
    return model, cfg.hub.hub_dataset_id or model


def embedded_root(cfg: Config) -> Path:
    return Path(cfg.hub.embedded_hub_root) if cfg.hub.embedded_hub_root else Path(cfg.loop.output_dir) / "hub"


def configure_hub(cfg: Config) -> HubTarget | None:
    """Decide the run's Hub once, set the environment, start the embedded server on the main process.

    Call before importing transformers, datasets, huggingface_hub or evaluate (modules imported
    earlier are patched, but a library may have cached the endpoint elsewhere).
    """
    if not cfg.hub.publish:
        return None
    model_repo, dataset_repo = repo_ids(cfg)
    token = find_token()
    if cfg.hub.push_to_hub and token:
        endpoint = os.environ.get("HF_ENDPOINT", REAL_ENDPOINT)
        point_libraries_at(endpoint, xet=True)
        return HubTarget(endpoint, token, model_repo, dataset_repo, embedded=False)
    if cfg.hub.push_to_hub:
        warnings.warn("push_to_hub is true but no token is configured (set HF_TOKEN or run `hf auth login`): "
                      "publishing to the embedded Hub instead", stacklevel=2)
    root = embedded_root(cfg)
    if is_main_process():
        server = start_embedded_hub(root)
        record_embedded_hub(server)
        point_libraries_at(server.url, xet=False)
        return HubTarget(server.url, None, model_repo, dataset_repo, embedded=True, server=server)
    url = wait_for_embedded_hub(root, FOLLOWER_WAIT_SECONDS)
    if url is None:
        # Never fall through to the real Hub: this process works offline instead.
        warnings.warn(f"no embedded Hub answered from {root / SERVER_FILE}: this process runs with HF_HUB_OFFLINE=1",
                      stacklevel=2)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        return HubTarget("", None, model_repo, dataset_repo, embedded=True)
    point_libraries_at(url, xet=False)
    return HubTarget(url, None, model_repo, dataset_repo, embedded=True)
