"""Where a run publishes: the embedded Hub or the real one, decided by ``open_hub`` on the main process.

- ``publish: false``: no target (the run directory still holds everything).
- ``push_to_hub: true``: the real Hub (or the Hub ``HF_ENDPOINT`` names), with the token huggingface_hub
  finds (``HF_TOKEN`` or ``hf auth login``). Everything that can be checked is checked before any
  training: a missing token, a token the Hub refuses, a read-only token and a ``hub_model_id`` /
  ``hub_dataset_id`` namespace the token cannot write are errors naming the key to change. The default
  model repo is ``<your user>/<run_name>``.
- otherwise: the embedded Hub (``scl_hf.hub.server``) started in this process on a free loopback
  port, its store at ``embedded_hub_root`` or ``<output_dir>/hub``; repos ``scl-hf/<run_name>``.

Nothing here changes a library's global state: every call gets ``endpoint=`` and ``token=``
explicitly, and the one setting huggingface_hub reads only from its module constants, whether
uploads go through Xet, is switched off around calls to a Hub that speaks only git-LFS and restored
after (``xet_scope``). Other processes of a launch never call ``open_hub``: they touch no Hub.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scl_hf.config import ConfigError
from scl_hf.metrics import METRIC_NAME
from scl_hf.rundir import embedded_hub_root

if TYPE_CHECKING:
    from scl_hf.config import Config
    from scl_hf.hub.server import HubServer

REAL_ENDPOINT = "https://huggingface.co"
EMBEDDED_NAMESPACE = "scl-hf"  # model repo "scl-hf/<run_name>" on the embedded Hub unless hub_model_id says otherwise


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

    def close(self) -> None:
        """Stop the embedded server this process started (no-op otherwise)."""
        if self.server is not None:
            self.server.stop()
            self.server = None


def uses_xet(endpoint: str) -> bool:
    """Whether uploads to ``endpoint`` go through Xet: the real Hub's do; the embedded Hub speaks git-LFS only."""
    host = (urlsplit(endpoint).hostname or "").lower()
    return host in ("huggingface.co", "hf.co") or host.endswith(".huggingface.co")


@contextmanager
def xet_scope(endpoint: str) -> Iterator[None]:
    """Within the block, uploads to ``endpoint`` use the transfer it speaks; huggingface_hub's setting is kept after.

    huggingface_hub reads ``constants.HF_HUB_DISABLE_XET`` at call time and offers no argument for it.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = saved or not uses_xet(endpoint)
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = saved


def _writable_namespaces(endpoint: str, token: str) -> tuple[str, set[str]]:
    """``(user, namespaces the token may write)`` from the Hub's whoami; a ConfigError when the token is refused."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi(endpoint=endpoint, token=token).whoami()
    except HfHubHTTPError as err:
        raise ConfigError(f"push_to_hub: {endpoint} refused the Hugging Face token ({err.response.status_code}): "
                          "set a valid HF_TOKEN or run `hf auth login`") from None
    user = info["name"]
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise ConfigError(f"push_to_hub: the token of {user!r} is read-only: create a token with write access "
                          "and set HF_TOKEN or run `hf auth login`")
    orgs = {org["name"] for org in info.get("orgs") or [] if org.get("roleInOrg") != "read"}
    return user, {user} | orgs


def open_hub(cfg: Config) -> HubTarget | None:
    """Decide the run's Hub and check it can be written; start the embedded server. Call on the main process only.

    Raises:
        ConfigError: ``push_to_hub`` without a usable write token, or a repo id in a namespace it cannot write.
    """
    if not cfg.hub.publish:
        return None
    if cfg.hub.push_to_hub:
        from huggingface_hub import get_token

        endpoint = (os.environ.get("HF_ENDPOINT") or REAL_ENDPOINT).rstrip("/")
        token = get_token()
        if not token:
            raise ConfigError(f"push_to_hub is true but no Hugging Face token was found for {endpoint}: set HF_TOKEN "
                              "or run `hf auth login` (or set push_to_hub: false to publish to the embedded Hub)")
        user, writable = _writable_namespaces(endpoint, token)
        model_repo = cfg.hub.hub_model_id or f"{user}/{cfg.loop.run_name}"
        dataset_repo = cfg.hub.hub_dataset_id or model_repo
        for key, repo in (("hub_model_id", model_repo), ("hub_dataset_id", dataset_repo)):
            namespace = repo.split("/")[0] if "/" in repo else user
            if namespace not in writable:
                raise ConfigError(f"{key} must be a repo id in a namespace the token of {user!r} can write "
                                  f"({', '.join(sorted(writable))}), got {repo!r}")
        return HubTarget(endpoint, token, model_repo, dataset_repo, embedded=False)
    from scl_hf.hub.server import HubServer

    server = HubServer(embedded_hub_root(cfg.run_dir, cfg.hub.embedded_hub_root), port=0).start()
    return HubTarget(server.url, None, *embedded_repo_ids(cfg), embedded=True, server=server)


def embedded_repo_ids(cfg: Config) -> tuple[str, str]:
    """``(model repo id, dataset repo id)`` a run published to on the embedded Hub."""
    model = cfg.hub.hub_model_id or f"{EMBEDDED_NAMESPACE}/{cfg.loop.run_name}"
    return model, cfg.hub.hub_dataset_id or model
