"""Loading a published generation with stock classes: the model, its tokenizer, its data, the list of generations.

Everything here is a thin call into ``transformers``/``datasets``/``huggingface_hub`` with
``revision="gen-XX"``, so the same lines work in any script without scl_hf. The endpoint is the
libraries' own (``HF_ENDPOINT``): to read a run published to the embedded Hub, either serve its
store (``scl-hf hub serve --root runs/hub``) and export ``HF_ENDPOINT`` before Python starts, or
call ``use_embedded_hub(root)`` first.

    from scl_hf import load_generation
    model, tokenizer = load_generation("scl-hf/smoke", 7)
"""

from __future__ import annotations

import re
from pathlib import Path

_TAG = re.compile(r"gen-(\d+)")


def use_embedded_hub(root: str | Path) -> str:
    """Serve the store at ``root`` from this process (loopback, free port) and point the libraries at it; the URL."""
    from scl_hf.hub.target import point_libraries_at, start_embedded_hub

    server = start_embedded_hub(root)
    point_libraries_at(server.url, xet=False)
    return server.url


def load_generation(repo: str, generation: int, **kwargs):
    """``(model, tokenizer)`` of a published generation: ``AutoModelForCausalLM``/``AutoTokenizer`` at tag ``gen-XX``.

    ``kwargs`` go to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``dtype``, ``cache_dir``, ``token``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scl_hf.cycles import revision

    tag = revision(generation)
    model = AutoModelForCausalLM.from_pretrained(repo, revision=tag, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(repo, revision=tag, cache_dir=kwargs.get("cache_dir"),
                                              token=kwargs.get("token"))
    return model, tokenizer


def load_generation_data(repo: str, generation: int, split: str | None = None, **kwargs):
    """Dataset config ``gen-XX`` at tag ``gen-XX``: a DatasetDict (splits ``train``, ``samples``) or one split."""
    from datasets import load_dataset

    from scl_hf.cycles import revision

    tag = revision(generation)
    return load_dataset(repo, tag, revision=tag, split=split, **kwargs)


def list_generations(repo: str, repo_type: str = "model", endpoint: str | None = None,
                     token: str | bool | None = None) -> dict[int, str]:
    """``{generation: commit}`` for every ``gen-XX`` tag of a repo, oldest first."""
    from huggingface_hub import HfApi

    refs = HfApi(endpoint=endpoint, token=token).list_repo_refs(repo, repo_type=repo_type)
    found = {int(m.group(1)): ref.target_commit for ref in refs.tags if (m := _TAG.fullmatch(ref.name))}
    return dict(sorted(found.items()))
