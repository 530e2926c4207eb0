"""Replaying a run's published generations to another Hub, in order, with their tags.

A run published offline lives in its embedded Hub store (``runs/hub``). ``sync_run`` serves that
store from this process and replays, for the model repo and the dataset repo, every ``gen-XX`` tag
that the destination lacks, oldest first: the files of the tagged commit become one commit on the
destination's ``main`` (files that the tag does not hold are deleted), tagged the same. The metric
Space, which has no tags, gets its current files. Re-running a sync only adds what is new.

    scl-hf hub sync runs/smoke --to https://huggingface.co --namespace my-user

Cards keep the repo names of the source (``--namespace`` renames the repos, not their text).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

import scl_hf
from scl_hf.config import load_config
from scl_hf.errors import RunDirError
from scl_hf.hub.publish import commit_files, repo_tags, tag_commit
from scl_hf.hub.server import HubServer
from scl_hf.hub.target import METRIC_NAME, REAL_ENDPOINT, embedded_repo_ids, xet_scope
from scl_hf.rundir import CONFIG, embedded_hub_root, generation_of_tag, tag


def _replay(src: HfApi, dst: HfApi, repo_id: str, repo_type: str, dst_repo_id: str, commit: str,
            tag: str | None, cache_dir: str) -> str:
    """Make ``main`` of the destination hold exactly the source files of ``commit`` (one commit), tag it; the oid."""
    title = src.list_repo_commits(repo_id, repo_type=repo_type, revision=commit)[0].title
    folder = Path(snapshot_download(repo_id, repo_type=repo_type, revision=commit, endpoint=src.endpoint,
                                    token=src.token, cache_dir=cache_dir))
    additions = [CommitOperationAdd(p.relative_to(folder).as_posix(), str(p)) for p in sorted(folder.rglob("*"))
                 if p.is_file() and p.name != ".gitattributes" and ".cache" not in p.relative_to(folder).parts]
    head = dst.repo_info(dst_repo_id, repo_type=repo_type).sha
    remote = dst.list_repo_files(dst_repo_id, repo_type=repo_type, revision=head)
    oid = commit_files(dst, dst_repo_id, repo_type, additions, title, head, remote)
    if tag is not None:
        tag_commit(dst, dst_repo_id, repo_type, tag, oid, title)
    return oid


def sync_repo(src: HfApi, dst: HfApi, repo_id: str, repo_type: str = "model", dst_repo_id: str | None = None,
              private: bool = False) -> list[dict]:
    """Replay the ``gen-XX`` tags of ``repo_id`` at ``src`` that ``dst`` lacks, oldest first (untagged repo: main).

    Returns one ``{"tag", "commit", "created"}`` per source tag (``tag`` None for an untagged repo).
    """
    dst_repo_id = dst_repo_id or repo_id
    kwargs = {}
    if repo_type == "space":
        kwargs["space_sdk"] = src.space_info(repo_id).sdk or "gradio"
    dst.create_repo(dst_repo_id, repo_type=repo_type, private=private, exist_ok=True, **kwargs)
    source = {g: oid for name, oid in repo_tags(src, repo_id, repo_type).items()
              if (g := generation_of_tag(name)) is not None}
    present = repo_tags(dst, dst_repo_id, repo_type)
    out = []
    with tempfile.TemporaryDirectory(prefix="scl_hf_sync_") as cache_dir:
        if not source:  # the metric Space: its current files
            head = src.repo_info(repo_id, repo_type=repo_type).sha
            oid = _replay(src, dst, repo_id, repo_type, dst_repo_id, head, None, cache_dir)
            return [{"tag": None, "commit": oid, "created": True}]
        for generation, commit in sorted(source.items()):
            name = tag(generation)
            if name in present:
                out.append({"tag": name, "commit": present[name], "created": False})
                continue
            oid = _replay(src, dst, repo_id, repo_type, dst_repo_id, commit, name, cache_dir)
            out.append({"tag": name, "commit": oid, "created": True})
    return out


def sync_run(run_dir: str | Path, to: str = REAL_ENDPOINT, token: str | bool | None = None, *,
             namespace: str | None = None, root: str | Path | None = None) -> dict:
    """Replay a run's model repo, dataset repo and metric Space from its embedded store to the Hub at ``to``.

    ``root`` defaults to the run's ``embedded_hub_root`` or ``<output_dir>/hub``; ``namespace``
    replaces the namespace of every destination repo id.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise RunDirError(f"{run_dir} is not a run directory: it has no {CONFIG}")
    cfg = load_config(run_dir / CONFIG)
    root = Path(root) if root is not None else embedded_hub_root(run_dir, cfg.hub.embedded_hub_root)
    if not (root / "repos").is_dir():
        raise RunDirError(f"no embedded Hub store at {root}: pass root= (--root) with the store of the run")
    model_repo, dataset_repo = embedded_repo_ids(cfg)
    space_repo = f"{model_repo.split('/')[0]}/{METRIC_NAME}"

    def rename(repo_id: str) -> str:
        return f"{namespace}/{repo_id.split('/')[1]}" if namespace else repo_id

    server = HubServer(root).start()
    try:
        src = HfApi(endpoint=server.url, token=False, library_name="scl_hf", library_version=scl_hf.__version__)
        dst = HfApi(endpoint=to.rstrip("/"), token=token, library_name="scl_hf", library_version=scl_hf.__version__)
        private = cfg.hub.hub_private_repo
        with xet_scope(to):  # uploads to the real Hub go through Xet, to an embedded Hub through git-LFS
            result = {"model": sync_repo(src, dst, model_repo, "model", rename(model_repo), private),
                      "dataset": sync_repo(src, dst, dataset_repo, "dataset", rename(dataset_repo), private)}
            try:
                src.space_info(space_repo)
            except RepositoryNotFoundError:
                result["space"] = None
            else:
                result["space"] = sync_repo(src, dst, space_repo, "space", rename(space_repo), private)
        return result
    finally:
        server.stop()
