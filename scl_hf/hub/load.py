"""Loading a published generation with stock classes: the model, its tokenizer, its data, the list of generations.

Everything here is a thin call into ``transformers``/``datasets``/``huggingface_hub`` with
``revision="gen-XX"``, so the same lines work in any script without scl_hf. The endpoint is the
libraries' own (``HF_ENDPOINT``): to read a run published to the embedded Hub, either serve its
store (``scl-hf hub serve --root runs/hub``) and export ``HF_ENDPOINT`` before Python starts, or
call ``use_embedded_hub(root)`` first.

    from scl_hf import load_generation
    model, tokenizer = load_generation("scl-hf/smoke", 7)

This is the read path, and the only place where scl_hf points the libraries' global endpoint
somewhere (``point_libraries_at``): ``from_pretrained``, ``load_dataset`` and ``evaluate.load`` take
no endpoint argument. Publishing never does (``scl_hf.hub.target``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from scl_hf.rundir import generation_of_tag, tag


def point_libraries_at(endpoint: str) -> None:
    """Make every Hugging Face library read from ``endpoint`` for the rest of the process (and its children).

    huggingface_hub, datasets and evaluate copy ``HF_ENDPOINT`` into module constants when they are
    imported, and transformers keeps a client whose endpoint is fixed at first use, so the environment
    alone is not enough once they are imported: their constants are set too. Uploads to a Hub other
    than the real one are switched to git-LFS (``HF_HUB_DISABLE_XET``) as well.
    """
    from scl_hf.hub.target import uses_xet

    endpoint = endpoint.rstrip("/")
    xet = uses_xet(endpoint)
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
        hf_api.api.endpoint = endpoint  # the client behind huggingface_hub.list_repo_refs(...) and friends
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


def use_embedded_hub(root: str | Path) -> str:
    """Serve the store at ``root`` from this process (loopback, free port) and point the libraries at it; the URL."""
    from scl_hf.hub.server import HubServer

    server = HubServer(root, port=0).start()
    point_libraries_at(server.url)
    return server.url


def load_generation(repo: str, generation: int, **kwargs):
    """``(model, tokenizer)`` of a published generation: ``AutoModelForCausalLM``/``AutoTokenizer`` at tag ``gen-XX``.

    ``kwargs`` go to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``dtype``, ``cache_dir``, ``token``);
    ``use_kernels`` is False unless given (``scl_hf.model.load_model`` says why).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs.setdefault("use_kernels", False)
    revision = tag(generation)
    model = AutoModelForCausalLM.from_pretrained(repo, revision=revision, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(repo, revision=revision, cache_dir=kwargs.get("cache_dir"),
                                              token=kwargs.get("token"))
    return model, tokenizer


def load_generation_data(repo: str, generation: int, split: str | None = None, **kwargs):
    """Dataset config ``gen-XX`` at tag ``gen-XX``: a DatasetDict (splits ``train``, ``samples``) or one split."""
    from datasets import load_dataset

    return load_dataset(repo, tag(generation), revision=tag(generation), split=split, **kwargs)


def list_generations(repo: str, repo_type: str = "model", endpoint: str | None = None,
                     token: str | bool | None = None) -> dict[int, str]:
    """``{generation: commit}`` for every ``gen-XX`` tag of a repo, oldest first."""
    from huggingface_hub import HfApi

    refs = HfApi(endpoint=endpoint, token=token).list_repo_refs(repo, repo_type=repo_type)
    found = {g: ref.target_commit for ref in refs.tags if (g := generation_of_tag(ref.name)) is not None}
    return dict(sorted(found.items()))
