"""The embedded Hub's on-disk store: content-addressed blobs, immutable commits, one refs file per repo.

Layout under the root folder::

    blobs/ab/abcdef…            file contents, named by their sha256 (shared by every repo)
    tmp/<pid>-<id>/             uploads and records being written, one folder per open store; the
                                folders of dead processes are deleted when a store opens
    repos/models/<ns>/<name>/   one folder per repo (also datasets/, spaces/)
        repo.json               id, type, creation date, privacy, Space SDK
        refs.json               {"branches": {name: commit}, "tags": {name: commit}}
        commits/<oid>.json      one commit: parents, message, date and the full file map
        .lock                   flock target: one writer per repo, across threads and processes

Crash safety: every file is written under ``tmp/`` and renamed into place (rename is atomic), and
a commit writes its blobs, then its commit record, then ``refs.json``. A process killed at any
point leaves each repo at its previous commit; what it leaves behind is at most an unreferenced
blob or commit record, and partial files in ``tmp/``, which the next open deletes. A write that
fails (a full disk) deletes its partial file at once and leaves the repo as it was.

Names are validated before they touch the file system: a repo id is two segments of letters,
digits, ``-``, ``_`` and ``.`` (no ``..``), and a path inside a repo never becomes a file name at
all (contents live under their hash), so no request can read or write outside the root.
Errors are ``HubError(status, code, message)``; the HTTP layer turns them into responses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # not POSIX: the per-repo thread lock still serialises writers of this process
    fcntl = None

REPO_TYPES = ("model", "dataset", "space")
# Names that cannot be namespaces because they are URL prefixes (as on the Hub).
RESERVED_NAMESPACES = frozenset({"api", "models", "datasets", "spaces", "resolve", "static"})
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
DEFAULT_BRANCH = "main"
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
# Extensions that always go through LFS (the Hub's default list, shortened). parquet must: datasets deletes
# each shard right after its preupload, so a shard told to go "regular" is gone when the commit is sent.
LFS_EXTENSIONS = (".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".gz", ".h5", ".joblib", ".msgpack", ".npy", ".npz",
                  ".onnx", ".parquet", ".pickle", ".pkl", ".pt", ".pth", ".safetensors", ".tar", ".tflite", ".xz",
                  ".zip", ".zst")
# The .gitattributes every new repo starts with: the same extensions.
GITATTRIBUTES = "".join(f"*{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class HubError(Exception):
    """A request the store refuses: HTTP ``status``, Hub ``code`` (X-Error-Code, may be empty), message."""

    def __init__(self, status: int, message: str, code: str = ""):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def now_iso() -> str:
    """UTC time as the Hub writes it: ``2024-05-01T12:00:00.000Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (sha1 of ``blob <size>\\0<data>``): the Hub's oid of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_repo_id(repo_id: str) -> tuple[str, str]:
    """``(namespace, name)`` of a valid repo id ``ns/name``, or a 400 HubError saying what is allowed."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_NAME.fullmatch(p) and ".." not in p and not p.endswith(".git") for p in parts):
        raise HubError(400, f"invalid repo id {repo_id!r}: expected 'namespace/name', each made of letters, digits, "
                            "'-', '_' and '.', starting with a letter or digit, at most 96 characters, without '..'")
    if parts[0].lower() in RESERVED_NAMESPACES:
        raise HubError(400, f"invalid repo id {repo_id!r}: the namespace {parts[0]!r} is reserved")
    return parts[0], parts[1]


def check_path(path: object) -> str:
    """A valid file path inside a repo (relative, '/'-separated, no '.', '..' or empty segments, no '.git')."""
    ok = isinstance(path, str) and 0 < len(path) <= 1000 and not any(c in path for c in "\\\0\r\n")
    segments = path.split("/") if ok else []
    if not ok or any(s in ("", ".", "..", ".git") for s in segments):
        raise HubError(400, f"invalid path in repo {path!r}: expected a relative path like 'folder/file.txt' without "
                            "'.', '..' or empty segments, backslashes, control characters or a '.git' folder")
    return path


def check_ref_name(name: object, what: str) -> str:
    """A valid branch or tag name: a string that no other revision spelling can mean."""
    if not (isinstance(name, str) and _REF.fullmatch(name) and ".." not in name and "//" not in name
            and not name.endswith(("/", ".lock")) and not _SHA1.fullmatch(name)):
        raise HubError(400, f"invalid {what} name {name!r}: expected letters, digits, '.', '_', '-' and '/', "
                            "starting with a letter or digit, at most 200 characters")
    if name.startswith("refs/"):  # "refs/heads/main" is how clients spell the branch main
        raise HubError(400, f"invalid {what} name {name!r}: names starting with 'refs/' are reserved")
    return name


@dataclass(frozen=True)
class RepoKey:
    """One repo: ``type`` in REPO_TYPES and a validated ``ns/name`` id."""

    type: str
    id: str

    @classmethod
    def parse(cls, repo_type: str, repo_id: str) -> RepoKey:
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type!r}: expected one of {REPO_TYPES}")
        check_repo_id(repo_id)
        return cls(repo_type, repo_id)

    @property
    def url_prefix(self) -> str:
        """The prefix of the repo's web and resolve URLs: '' for models, 'datasets/' or 'spaces/'."""
        return "" if self.type == "model" else f"{self.type}s/"


class Store:
    """The store of one root folder. Thread-safe; several processes may share a root (flock per repo)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.blobs = self.root / "blobs"
        self.repos = self.root / "repos"
        for folder in (self.blobs, self.repos):
            folder.mkdir(parents=True, exist_ok=True)
        # Each open store writes its partial files in its own folder; folders of dead processes are the
        # leftovers of killed uploads and go now (a live process sharing the root keeps its own).
        (self.root / "tmp").mkdir(exist_ok=True)
        for leftover in (self.root / "tmp").iterdir():
            pid = leftover.name.split("-")[0]
            if not (pid.isdigit() and _alive(int(pid))):
                shutil.rmtree(leftover, ignore_errors=True)
        self.tmp = self.root / "tmp" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self._locks: dict[RepoKey, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---- files: temporary, then renamed into place ----

    def _tmp_path(self) -> Path:
        return self.tmp / uuid.uuid4().hex

    def _write_file(self, path: Path, chunks: Iterable[bytes]) -> None:
        """Write a new file and fsync it: every byte the store writes goes through here. On an error (a full
        disk: OSError ENOSPC) the caller deletes ``path``, which is always a temporary name."""
        with open(path, "xb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())

    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = self._tmp_path()
        try:
            self._write_file(tmp, [data])
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _write_json(self, path: Path, obj: object) -> None:
        self._write_atomic(path, json.dumps(obj, indent=1, sort_keys=True).encode())

    # ---- blobs ----

    def blob_path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise HubError(400, f"invalid sha256 {sha256!r}: expected 64 lowercase hex digits")
        return self.blobs / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def put_blob(self, data: bytes) -> str:
        """Store ``data``; returns its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha, len(data)):
            self._write_atomic(self.blob_path(sha), data)
        return sha

    def put_blob_stream(self, chunks: Iterator[bytes], sha256: str, size: int) -> None:
        """Store an upload streamed in ``chunks``; a 400 unless it has exactly ``size`` bytes and hash ``sha256``."""
        target = self.blob_path(sha256)
        tmp = self._tmp_path()
        digest, written = hashlib.sha256(), 0

        def checked() -> Iterator[bytes]:
            nonlocal written
            for chunk in chunks:
                written += len(chunk)
                if written > size:
                    raise HubError(400, f"upload is larger than the announced {size} bytes")
                digest.update(chunk)
                yield chunk

        try:
            self._write_file(tmp, checked())
            if written != size or digest.hexdigest() != sha256:
                raise HubError(400, f"upload does not match its LFS object: got {written} bytes with sha256 "
                                    f"{digest.hexdigest()}, expected {size} bytes with sha256 {sha256}")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def open_blob(self, sha256: str) -> BinaryIO:
        return open(self.blob_path(sha256), "rb")

    # ---- repos ----

    def repo_dir(self, key: RepoKey) -> Path:
        ns, name = check_repo_id(key.id)
        path = self.repos / f"{key.type}s" / ns / name
        if not path.resolve().is_relative_to(self.repos):  # belt and braces: validation already forbids this
            raise HubError(400, f"invalid repo id {key.id!r}")
        return path

    def exists(self, key: RepoKey) -> bool:
        return (self.repo_dir(key) / "refs.json").is_file()

    def repo_meta(self, key: RepoKey) -> dict:
        try:
            return json.loads((self.repo_dir(key) / "repo.json").read_text())
        except FileNotFoundError:
            raise HubError(404, f"{key.type} repository {key.id!r} not found", "RepoNotFound") from None

    def list_repos(self, repo_type: str) -> list[dict]:
        folder = self.repos / f"{repo_type}s"
        metas = []
        for path in sorted(folder.glob("*/*/repo.json")) if folder.is_dir() else []:
            if (path.parent / "refs.json").is_file():
                metas.append(json.loads(path.read_text()))
        return metas

    @contextmanager
    def locked(self, key: RepoKey) -> Iterator[None]:
        """One writer per repo: a thread lock here, and an flock for other processes sharing the root."""
        if not self.exists(key):
            raise HubError(404, f"{key.type} repository {key.id!r} not found", "RepoNotFound")
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if fcntl is None:
                yield
                return
            lock_path = self.repo_dir(key) / ".lock"
            with open(lock_path, "a") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def create_repo(self, key: RepoKey, *, private: bool = False, sdk: str | None = None) -> None:
        """A new repo whose ``main`` holds one system commit with ``.gitattributes``; 409 if it exists."""
        folder = self.repo_dir(key)
        if self.exists(key):
            raise HubError(409, f"You already created this {key.type} repo: {key.id}")
        staging = self._tmp_path()
        staging.mkdir()
        meta = {"id": key.id, "type": key.type, "private": bool(private), "createdAt": now_iso()}
        if key.type == "space":
            meta["sdk"] = sdk
        try:
            (staging / "commits").mkdir()
            self._write_file(staging / "repo.json", [json.dumps(meta, indent=1, sort_keys=True).encode()])
            gitattributes = GITATTRIBUTES.encode()
            files = {".gitattributes": self._entry(self.put_blob(gitattributes), gitattributes, lfs=False)}
            oid = self._write_commit(staging, [], files, "initial commit", "", ["system"])
            refs = {"branches": {DEFAULT_BRANCH: oid}, "tags": {}}
            self._write_file(staging / "refs.json", [json.dumps(refs).encode()])
            folder.parent.mkdir(parents=True, exist_ok=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            os.rename(staging, folder)  # atomic; fails if another request created the repo meanwhile
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise HubError(409, f"You already created this {key.type} repo: {key.id}") from None

    # ---- commits and refs ----

    @staticmethod
    def _entry(sha256: str, data: bytes | None, *, lfs: bool, size: int | None = None) -> dict:
        """A file map entry. ``oid`` is what the Hub shows as blob id: git's oid of the file or of its LFS pointer."""
        size = len(data) if data is not None else size
        if lfs:
            oid = git_blob_oid(LFS_POINTER.format(oid=sha256, size=size).encode())
        else:
            oid = git_blob_oid(data)
        return {"sha256": sha256, "size": size, "oid": oid, "lfs": lfs}

    def _write_commit(self, folder: Path, parents: list[str], files: dict, title: str, message: str,
                      authors: list[str]) -> str:
        record = {"parents": parents, "files": files, "title": title, "message": message, "date": now_iso(),
                  "authors": authors}
        oid = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
        self._write_json(folder / "commits" / f"{oid}.json", {"id": oid, **record})
        return oid

    def refs(self, key: RepoKey) -> dict:
        try:
            return json.loads((self.repo_dir(key) / "refs.json").read_text())
        except FileNotFoundError:
            raise HubError(404, f"{key.type} repository {key.id!r} not found", "RepoNotFound") from None

    def commit_record(self, key: RepoKey, oid: str) -> dict:
        try:
            return json.loads((self.repo_dir(key) / "commits" / f"{oid}.json").read_text())
        except FileNotFoundError:
            raise HubError(404, f"revision {oid!r} not found in {key.id}", "RevisionNotFound") from None

    def resolve(self, key: RepoKey, revision: str) -> str:
        """The commit oid of a branch, a tag or a commit oid of this repo; 404 RevisionNotFound otherwise."""
        refs = self.refs(key)
        for kind in ("branches", "tags"):
            if revision in refs[kind]:
                return refs[kind][revision]
        for prefix, kind in (("refs/heads/", "branches"), ("refs/tags/", "tags")):
            if revision.startswith(prefix) and revision[len(prefix):] in refs[kind]:
                return refs[kind][revision[len(prefix):]]
        if _SHA1.fullmatch(revision) and (self.repo_dir(key) / "commits" / f"{revision}.json").is_file():
            return revision
        raise HubError(404, f"revision {revision!r} not found in {key.type} repository {key.id}", "RevisionNotFound")

    def commit(self, key: RepoKey, branch: str, title: str, description: str, operations: list[tuple[str, dict]],
               parent_commit: str | None = None, author: str = "user") -> str:
        """Apply ``operations`` to the head of ``branch`` as one new commit; returns its oid.

        Operations are ``(kind, value)`` as on the wire: ``file`` (``content`` bytes already decoded),
        ``lfsFile`` (``oid``, an uploaded blob), ``deletedFile``, ``deletedFolder``. Everything is
        checked before anything is written; a stale ``parent_commit`` is a 412.
        """
        folder = self.repo_dir(key)
        with self.locked(key):
            refs = self.refs(key)
            if branch not in refs["branches"]:
                if branch in refs["tags"] or _SHA1.fullmatch(branch):
                    raise HubError(400, f"can only commit to a branch, and {branch!r} is not one of "
                                        f"{sorted(refs['branches'])}")
                raise HubError(404, f"branch {branch!r} not found in {key.id}", "RevisionNotFound")
            head = refs["branches"][branch]
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, f"A commit has happened since {parent_commit}: the head of {branch} is now "
                                    f"{head}. Please refresh and try again.")
            files = dict(self.commit_record(key, head)["files"])
            contents: list[bytes] = []
            for kind, value in operations:
                path = value["path"]
                if kind == "file":
                    data = value["content"]
                    files[path] = self._entry(hashlib.sha256(data).hexdigest(), data, lfs=False)
                    contents.append(data)
                elif kind == "lfsFile":
                    if not self.has_blob(value["oid"]):
                        raise HubError(400, f"LFS object {value['oid']} of {path!r} was not uploaded: send it to the "
                                            "LFS batch endpoint and PUT it first")
                    size = self.blob_path(value["oid"]).stat().st_size
                    if value.get("size") is not None and value["size"] != size:
                        raise HubError(400, f"LFS object {value['oid']} of {path!r} has {size} bytes, "
                                            f"not {value['size']}")
                    files[path] = self._entry(value["oid"], None, lfs=True, size=size)
                elif kind == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path!r}", "EntryNotFound")
                else:  # deletedFolder
                    prefix = path.rstrip("/") + "/"
                    doomed = [p for p in files if p.startswith(prefix)]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path!r}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
            for path in files:  # a path cannot be both a file and a folder
                parts = path.split("/")
                for i in range(1, len(parts)):
                    if "/".join(parts[:i]) in files:
                        raise HubError(400, f"{path!r} needs a folder {'/'.join(parts[:i])!r}, which is a file")
            for data in contents:
                self.put_blob(data)
            oid = self._write_commit(folder, [head], files, title, description, [author])
            refs["branches"][branch] = oid
            self._write_json(folder / "refs.json", refs)
            return oid

    def create_ref(self, key: RepoKey, kind: str, name: str, revision: str, message: str = "") -> str:
        """A new branch or tag (``kind`` 'branches' or 'tags') at ``revision``; 409 if a branch or tag has the name."""
        check_ref_name(name, "branch" if kind == "branches" else "tag")
        with self.locked(key):
            refs = self.refs(key)
            oid = self.resolve(key, revision)
            for existing in ("branches", "tags"):  # one name, one revision: a tag may not share a branch's name
                if name in refs[existing]:
                    what = "Branch" if existing == "branches" else "Tag"
                    raise HubError(409, f"{what} {name!r} already exists in {key.id} (at {refs[existing][name]})")
            refs[kind][name] = oid
            if kind == "tags" and message:
                refs.setdefault("tag_messages", {})[name] = message
            self._write_json(self.repo_dir(key) / "refs.json", refs)
            return oid

    def delete_ref(self, key: RepoKey, kind: str, name: str) -> None:
        if kind == "branches" and name == DEFAULT_BRANCH:
            raise HubError(400, f"cannot delete the default branch {DEFAULT_BRANCH!r}")
        with self.locked(key):
            refs = self.refs(key)
            if name not in refs[kind]:
                what = "branch" if kind == "branches" else "tag"
                raise HubError(404, f"{what} {name!r} not found in {key.id}", "RevisionNotFound")
            del refs[kind][name]
            refs.get("tag_messages", {}).pop(name, None)
            self._write_json(self.repo_dir(key) / "refs.json", refs)

    def history(self, key: RepoKey, oid: str) -> Iterator[dict]:
        """Commit records from ``oid`` back to the initial commit, following first parents."""
        while oid:
            record = self.commit_record(key, oid)
            yield record
            oid = record["parents"][0] if record["parents"] else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def decode_base64(text: object, path: str) -> bytes:
    """Strict base64 of a committed regular file, or a 400 naming the file."""
    try:
        return base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise HubError(400, f"content of {path!r} is not valid base64") from None
