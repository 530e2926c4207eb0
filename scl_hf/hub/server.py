"""The embedded Hub server: the part of the Hub HTTP API that huggingface_hub, transformers, datasets and evaluate use.

No Hub is reachable from development machines and CI, and no installable package offers a
write-capable one, so scl_hf serves its own (standard library only, plus PyYAML to check cards).
It speaks, for model, dataset and Space repos::

    GET  /api/whoami-v2                         POST /api/repos/create        POST /api/validate-yaml
    GET  /api/{type}s[?author=]                 GET  /api/{type}s/{id}[/revision/{rev}]
    GET  /api/{type}s/{id}/tree/{rev}[/{path}]  POST /api/{type}s/{id}/paths-info/{rev}
    POST /api/{type}s/{id}/preupload/{rev}      POST /api/{type}s/{id}/commit/{branch}   (NDJSON)
    POST|DELETE /api/{type}s/{id}/branch/{b}    POST /api/{type}s/{id}/tag/{rev}, DELETE …/tag/{tag}
    GET  /api/{type}s/{id}/refs                 GET  /api/{type}s/{id}/commits/{rev}
    POST /{prefix}{id}.git/info/lfs/objects/batch  and the PUT to the upload URL it hands out
    HEAD|GET /{prefix}{id}/resolve/{rev}/{path}    (Range, X-Repo-Commit, ETag)

where ``{prefix}`` is '' for models, 'datasets/' or 'spaces/'. Not served: Xet (clients must set
``HF_HUB_DISABLE_XET=1``), pull requests, discussions, multipart LFS. Storage is ``store.Store``.

Safety: binds to 127.0.0.1 unless told otherwise; when a write ``token`` is configured every write
needs ``Authorization: Bearer <token>`` (reads stay open: a repo's ``private`` flag is recorded,
not enforced), and LFS upload URLs carry an HMAC signature instead (clients send the PUT without
headers). Malformed requests get a 4xx with a JSON
``{"error": ...}`` body and an ``X-Error-Code`` where the Hub has one, before anything is written.

    scl-hf hub serve --root runs/hub [--port 8080]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from scl_hf.hub.store import (
    DEFAULT_BRANCH,
    LFS_POINTER,
    REPO_TYPES,
    SPACE_SDKS,
    HubError,
    RepoKey,
    Store,
    check_path,
    decode_base64,
    git_blob_oid,
)

USER = "user"  # the account name whoami reports; repos created without a namespace go there
MAX_JSON_BYTES = 64 << 20  # JSON request bodies (preupload lists, paths-info forms)
MAX_COMMIT_BYTES = 2 << 30  # NDJSON commit bodies carry regular files base64-encoded (each < 10 MiB)
MAX_LFS_BYTES = 1 << 40
LFS_THRESHOLD = 10 << 20  # files at least this large go through LFS, as on the Hub
# Extensions that always go through LFS. parquet must: datasets deletes each shard right after preupload.
LFS_EXTENSIONS = (".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".gz", ".h5", ".joblib", ".msgpack", ".npy", ".npz",
                  ".onnx", ".parquet", ".pickle", ".pkl", ".pt", ".pth", ".safetensors", ".tar", ".tflite", ".xz",
                  ".zip", ".zst")
CHUNK = 1 << 20
_TYPES = {f"{t}s": t for t in REPO_TYPES}  # URL segment -> repo type
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.S)


def upload_mode(path: str, size: int, sample: bytes) -> str:
    """'lfs' for binaries and large files, 'regular' otherwise (the Hub's rule, with a fixed extension list)."""
    if size >= LFS_THRESHOLD or path.lower().endswith(LFS_EXTENSIONS) or b"\0" in sample:
        return "lfs"
    return "regular"


def front_matter(text: str) -> dict | None:
    """The YAML metadata block of a card, parsed; None without one; HubError(400) when it is not a mapping."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return None
    import yaml  # a dependency of scl_hf; imported here so the rest of the server is standard library

    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        raise HubError(400, f"invalid YAML metadata in README.md: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HubError(400, f"YAML metadata in README.md must be a mapping, got {type(data).__name__}")
    return data


class HubServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer bound to a Store. ``url`` is where clients reach it."""

    daemon_threads = True  # a hung client never keeps the process alive
    allow_reuse_address = True

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.store = Store(root)
        self.token = token
        self.secret = secrets.token_bytes(32)  # signs LFS upload URLs
        self._thread: threading.Thread | None = None
        super().__init__((host, port), HubRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def sign(self, key: RepoKey, oid: str, size: int) -> str:
        return hmac.new(self.secret, f"{key.type}/{key.id}/{oid}/{size}".encode(), hashlib.sha256).hexdigest()

    def start(self) -> HubServer:
        """Serve from a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="scl-hf-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (waits for the serving thread)."""
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class HubRequestHandler(BaseHTTPRequestHandler):
    """One request: route it, turn HubError into a JSON error response."""

    server: HubServer
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server_version = "scl-hf-hub/1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # ---- plumbing ----

    def _has_body(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower() or self.headers.get(
            "Content-Length", "0").strip() not in ("", "0")

    def _dispatch(self, method: str) -> None:
        self._body_read = not self._has_body()
        try:
            split = urlsplit(self.path)
            # Split before unquoting: a revision like "refs%2Fpr%2F1" is one segment.
            self.segments = [unquote(s) for s in split.path.split("/")[1:]]
            self.query = parse_qs(split.query)
            self._route(method)
        except HubError as err:
            self._error(err)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as err:  # a bug: answer 500 rather than drop the connection
            self._error(HubError(500, f"internal error: {type(err).__name__}: {err}"))
            raise
        if not self._body_read:  # a bug: an unread body would be parsed as the next request
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: object, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, err: HubError) -> None:
        # HTTP headers are latin-1: escape what a request echoed back into the message
        headers = {"X-Error-Message": err.message.splitlines()[0][:200].encode("ascii", "backslashreplace").decode()}
        if err.code:
            headers["X-Error-Code"] = err.code
        if not self._body_read:  # drain a small unread body to keep the connection usable
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                length = -1
            if 0 <= length <= (1 << 20) and "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                self.rfile.read(length)
                self._body_read = True
        if err.status >= 500 or not self._body_read:
            self.close_connection = True
            headers["Connection"] = "close"  # tell the client not to reuse this connection
        self._json({"error": err.message}, err.status, headers)

    def _chunks(self, limit: int):
        """The request body in pieces, from Content-Length or chunked transfer encoding, at most ``limit`` bytes."""
        self._body_read = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self._body_read = False
                    raise HubError(400, "malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return
                total += size
                if total > limit:
                    self._body_read = False
                    raise HubError(413, f"request body larger than {limit} bytes")
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, CHUNK))
                    if not data:
                        raise ConnectionError("client closed the connection mid-body")
                    remaining -= len(data)
                    yield data
                self.rfile.readline(16)  # CRLF after the chunk
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self._body_read = False
            raise HubError(400, "invalid Content-Length") from None
        if length < 0 or length > limit:
            self._body_read = False
            raise HubError(413 if length > limit else 400, f"request body of {length} bytes (limit {limit})")
        while length:
            data = self.rfile.read(min(length, CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            length -= len(data)
            yield data

    def _body(self, limit: int = MAX_JSON_BYTES) -> bytes:
        return b"".join(self._chunks(limit))

    def _json_body(self) -> dict:
        try:
            data = json.loads(self._body() or b"{}")
        except ValueError:
            raise HubError(400, "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HubError(400, "request body must be a JSON object")
        return data

    def _require_write(self) -> None:
        """When a token is configured, writes must present it."""
        if self.server.token is None:
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
            raise HubError(401, "Invalid credentials in Authorization header: this embedded Hub needs its write "
                                "token for writes")

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    # ---- routing ----

    def _route(self, method: str) -> None:
        s = self.segments
        if s[:1] == ["api"]:
            if s[1:] == ["whoami-v2"] and method == "GET":
                return self._whoami()
            if s[1:] == ["validate-yaml"] and method == "POST":
                return self._validate_yaml()
            if s[1:] == ["repos", "create"] and method == "POST":
                return self._create_repo()
            if len(s) == 2 and s[1] in _TYPES and method == "GET":
                return self._list_repos(_TYPES[s[1]])
            if len(s) >= 4 and s[1] in _TYPES:
                key = RepoKey.parse(_TYPES[s[1]], f"{s[2]}/{s[3]}")
                return self._repo_api(method, key, s[4:])
            raise HubError(404, f"no such API route: {method} {self.path}")
        # Web-style routes: {prefix}{ns}/{name}/resolve/... and {prefix}{ns}/{name}.git/info/lfs/...
        repo_type = "model"
        if s[:1] in (["datasets"], ["spaces"]):
            repo_type, s = _TYPES[s[0]], s[1:]
        if len(s) >= 5 and s[1].endswith(".git") and s[2:5] == ["info", "lfs", "objects"]:
            key = RepoKey.parse(repo_type, f"{s[0]}/{s[1][:-4]}")
            if s[5:] == ["batch"] and method == "POST":
                return self._lfs_batch(key)
            if len(s) == 7 and method == "PUT":
                return self._lfs_put(key, s[5], s[6])
        if len(s) >= 5 and s[2] == "resolve" and method in ("GET", "HEAD"):
            key = RepoKey.parse(repo_type, f"{s[0]}/{s[1]}")
            return self._resolve(key, s[3], "/".join(s[4:]))
        raise HubError(404, f"no such route: {method} {self.path}")

    def _repo_api(self, method: str, key: RepoKey, rest: list[str]) -> None:
        store = self.server.store
        action, args = (rest[0], rest[1:]) if rest else ("", [])
        if method == "GET" and not rest:
            return self._json(self._info(key, DEFAULT_BRANCH, default=True))
        if method == "GET" and action == "revision" and args:
            return self._json(self._info(key, "/".join(args)))
        if method == "GET" and action == "tree" and args:
            return self._tree(key, args[0], "/".join(args[1:]))
        if method == "POST" and action == "paths-info" and len(args) == 1:
            return self._paths_info(key, args[0])
        if method == "POST" and action == "preupload" and len(args) == 1:
            return self._preupload(key, args[0])
        if method == "POST" and action == "commit" and len(args) == 1:
            return self._commit(key, args[0])
        if method == "GET" and action == "refs" and not args:
            return self._refs(key)
        if method == "GET" and action == "commits" and len(args) == 1:
            return self._commits(key, args[0])
        if action in ("branch", "tag") and len(args) == 1 and method in ("POST", "DELETE"):
            self._require_write()
            kind = "branches" if action == "branch" else "tags"
            if method == "DELETE":
                self._body()
                store.delete_ref(key, kind, args[0])
                return self._json({})
            body = self._json_body()
            if action == "branch":
                if body.get("emptyCommit"):
                    raise HubError(400, "emptyCommit branches are not supported by the embedded Hub")
                store.create_ref(key, kind, args[0], str(body.get("startingPoint") or DEFAULT_BRANCH))
            else:
                store.create_ref(key, kind, str(body.get("tag", "")), args[0], str(body.get("message") or ""))
            return self._json({})
        raise HubError(404, f"no such API route: {method} {self.path}")

    # ---- account, cards, repos ----

    def _whoami(self) -> None:
        if self.server.token is not None and self.headers.get("Authorization") is not None:
            self._require_write()
        self._json({"type": "user", "id": USER, "name": USER, "fullname": USER, "email": None,
                    "emailVerified": False, "isPro": False, "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "embedded", "role": "write"}}})

    def _validate_yaml(self) -> None:
        body = self._json_body()
        content = body.get("content")
        if not isinstance(content, str):
            raise HubError(400, "validate-yaml needs a string 'content'")
        try:
            front_matter(content)
        except HubError as err:
            return self._json({"errors": [{"message": err.message}], "warnings": []}, 400)
        self._json({"errors": [], "warnings": []})

    def _create_repo(self) -> None:
        self._require_write()
        body = self._json_body()
        repo_type = body.get("type") or "model"
        name, namespace = body.get("name"), body.get("organization") or USER
        if not isinstance(name, str) or not isinstance(namespace, str):
            raise HubError(400, "repos/create needs a string 'name' (and optionally 'organization')")
        key = RepoKey.parse(repo_type, f"{namespace}/{name}")
        sdk = body.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:
            raise HubError(400, f"a Space needs 'sdk', one of {SPACE_SDKS}, got {sdk!r}")
        url = f"{self._base()}/{key.url_prefix}{key.id}"
        if self.server.store.exists(key):
            return self._json({"error": f"You already created this {repo_type} repo", "url": url}, 409)
        private = body.get("private") or body.get("visibility") == "private"
        self.server.store.create_repo(key, private=bool(private), sdk=sdk)
        self._json({"url": url, "name": key.id, "id": key.id})

    def _list_repos(self, repo_type: str) -> None:
        author = self.query.get("author", [None])[0]
        search = self.query.get("search", [""])[0]
        out = []
        for meta in self.server.store.list_repos(repo_type):
            if (author is None or meta["id"].split("/")[0] == author) and search in meta["id"]:
                out.append(self._info(RepoKey(repo_type, meta["id"]), DEFAULT_BRANCH, default=True, siblings=False))
        self._json(out)

    def _info(self, key: RepoKey, revision: str, default: bool = False, siblings: bool = True) -> dict:
        store = self.server.store
        meta = store.repo_meta(key)
        oid = store.resolve(key, revision)
        record = store.commit_record(key, oid)
        info = {"_id": hashlib.sha1(key.id.encode()).hexdigest()[:24], "id": key.id,
                "author": key.id.split("/")[0], "sha": oid, "lastModified": record["date"],
                "createdAt": meta["createdAt"], "private": meta["private"], "disabled": False, "gated": False,
                "downloads": 0, "likes": 0, "tags": []}
        if siblings:
            blobs = "blobs" in self.query
            info["siblings"] = [self._sibling(path, entry, blobs) for path, entry in sorted(record["files"].items())]
        if key.type == "space":
            info["sdk"] = meta.get("sdk")
        readme = record["files"].get("README.md")
        if readme is not None and readme["size"] < (1 << 20):
            with store.open_blob(readme["sha256"]) as f:
                try:
                    card = front_matter(f.read().decode("utf-8", "replace"))
                except HubError:
                    card = None
            if card:
                info["cardData"] = card
                for field in ("library_name", "pipeline_tag"):
                    if isinstance(card.get(field), str):
                        info[field] = card[field]
                if isinstance(card.get("tags"), list):
                    info["tags"] = [t for t in card["tags"] if isinstance(t, str)]
        return info

    @staticmethod
    def _sibling(path: str, entry: dict, blobs: bool) -> dict:
        sibling = {"rfilename": path}
        if blobs:
            sibling.update(size=entry["size"], blobId=entry["oid"])
            if entry["lfs"]:
                pointer = LFS_POINTER.format(oid=entry["sha256"], size=entry["size"])
                sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": len(pointer)}
        return sibling

    # ---- trees ----

    @staticmethod
    def _file_item(path: str, entry: dict) -> dict:
        item = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            pointer = LFS_POINTER.format(oid=entry["sha256"], size=entry["size"])
            item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": len(pointer)}
        return item

    @staticmethod
    def _folder_item(path: str, files: dict) -> dict:
        prefix = path + "/"
        listing = sorted((p, e["oid"]) for p, e in files.items() if p.startswith(prefix))
        return {"type": "directory", "oid": hashlib.sha1(json.dumps(listing).encode()).hexdigest(), "size": 0,
                "path": path}

    def _tree(self, key: RepoKey, revision: str, path: str) -> None:
        store = self.server.store
        oid = store.resolve(key, revision)
        files = store.commit_record(key, oid)["files"]
        path = path.strip("/")
        if path:
            check_path(path)
        prefix = path + "/" if path else ""
        if path and not any(p.startswith(prefix) for p in files):
            raise HubError(404, f"folder {path!r} not found at {revision} in {key.id}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        folders, items = set(), []
        for p in sorted(files):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix):].split("/")
            for i in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.add(prefix + "/".join(parts[:i]))
            if recursive or len(parts) == 1:
                items.append(self._file_item(p, files[p]))
        items += [self._folder_item(f, files) for f in sorted(folders)]
        self._json(sorted(items, key=lambda item: item["path"]), headers={"X-Repo-Commit": oid})

    def _paths_info(self, key: RepoKey, revision: str) -> None:
        body = self._body().decode("utf-8", "replace")
        if "json" in self.headers.get("Content-Type", ""):
            try:
                paths = json.loads(body or "{}").get("paths", [])
            except (ValueError, AttributeError):
                raise HubError(400, "paths-info body is not a JSON object") from None
        else:
            paths = parse_qs(body).get("paths", [])
        if isinstance(paths, str):
            paths = [paths]
        store = self.server.store
        oid = store.resolve(key, revision)
        files = store.commit_record(key, oid)["files"]
        out = []
        for path in paths:
            path = check_path(str(path).strip("/"))
            if path in files:
                out.append(self._file_item(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                out.append(self._folder_item(path, files))
        self._json(out, headers={"X-Repo-Commit": oid})

    def _refs(self, key: RepoKey) -> None:
        refs = self.server.store.refs(key)

        def items(kind: str, prefix: str) -> list[dict]:
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": o} for n, o in sorted(refs[kind].items())]

        self._json({"branches": items("branches", "refs/heads/"), "tags": items("tags", "refs/tags/"),
                    "converts": [], "pullRequests": []})

    def _commits(self, key: RepoKey, revision: str) -> None:
        store = self.server.store
        out = [{"id": r["id"], "title": r["title"], "message": r["message"], "date": r["date"],
                "authors": [{"user": a} for a in r["authors"]]}
               for r in store.history(key, store.resolve(key, revision))]
        self._json(out)

    # ---- uploads ----

    def _preupload(self, key: RepoKey, revision: str) -> None:
        body = self._json_body()
        if "create_pr" in self.query:
            raise HubError(400, "pull requests are not supported by the embedded Hub")
        store = self.server.store
        oid = store.resolve(key, revision)
        files_now = store.commit_record(key, oid)["files"]
        requested = body.get("files")
        if not isinstance(requested, list):
            raise HubError(400, "preupload needs a list 'files' of {path, sample, size}")
        out = []
        for item in requested:
            if not isinstance(item, dict) or not isinstance(item.get("size"), int) or item["size"] < 0:
                raise HubError(400, "each preupload file needs 'path', 'size' (an integer >= 0) and 'sample'")
            path = check_path(item.get("path"))
            sample = decode_base64(item.get("sample", ""), path)
            mode = upload_mode(path, item["size"], sample)
            entry = {"path": path, "uploadMode": mode, "shouldIgnore": False}
            current = files_now.get(path)
            if current is not None:  # lets the client skip files that did not change
                if mode == "lfs":
                    entry["oid"] = current["sha256"]
                elif not current["lfs"]:
                    entry["oid"] = current["oid"]
                else:
                    with store.open_blob(current["sha256"]) as f:
                        entry["oid"] = git_blob_oid(f.read())
            out.append(entry)
        self._json({"files": out, "commitOid": oid})

    def _lfs_batch(self, key: RepoKey) -> None:
        self._require_write()
        body = self._json_body()
        store = self.server.store
        if not store.exists(key):
            raise HubError(404, f"{key.type} repository {key.id!r} not found", "RepoNotFound")
        if body.get("operation") != "upload":
            raise HubError(400, "the embedded Hub's LFS batch endpoint only serves 'upload' (download via resolve)")
        objects = body.get("objects")
        if not isinstance(objects, list):
            raise HubError(400, "LFS batch needs a list 'objects' of {oid, size}")
        out = []
        for obj in objects:
            oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
            if not isinstance(oid, str) or not isinstance(size, int) or not 0 <= size <= MAX_LFS_BYTES:
                raise HubError(400, f"invalid LFS object {obj!r}: expected a sha256 'oid' and an integer 'size'")
            store.blob_path(oid)  # validates the oid
            item = {"oid": oid, "size": size, "authenticated": True}
            if not store.has_blob(oid, size):
                href = (f"{self._base()}/{key.url_prefix}{key.id}.git/info/lfs/objects/{oid}/{size}"
                        f"?sig={self.server.sign(key, oid, size)}")
                item["actions"] = {"upload": {"href": href, "expires_in": 86400}}
            out.append(item)
        self._json({"transfer": "basic", "objects": out, "hash_algo": "sha256"},
                   headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, key: RepoKey, oid: str, size_text: str) -> None:
        store = self.server.store
        if not size_text.isdigit():
            raise HubError(400, f"invalid LFS object size {size_text!r}")
        size = int(size_text)
        store.blob_path(oid)
        sig = self.query.get("sig", [""])[0]
        if not hmac.compare_digest(sig.encode(), self.server.sign(key, oid, size).encode()):
            raise HubError(403, "invalid or missing signature on the LFS upload URL: ask the batch endpoint for one")
        if not store.exists(key):
            raise HubError(404, f"{key.type} repository {key.id!r} not found", "RepoNotFound")
        store.put_blob_stream(self._chunks(size), oid, size)
        self._json({})

    def _commit(self, key: RepoKey, branch: str) -> None:
        self._require_write()
        if "create_pr" in self.query:
            raise HubError(400, "pull requests are not supported by the embedded Hub")
        body = self._body(MAX_COMMIT_BYTES)
        header, operations = None, []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                kind, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise HubError(400, f"commit line {number} is not a JSON object with 'key' and 'value'") from None
            if not isinstance(value, dict):
                raise HubError(400, f"commit line {number}: 'value' must be an object")
            if kind == "header":
                if header is not None or operations:
                    raise HubError(400, f"commit line {number}: the header must come first, once")
                header = value
                continue
            if header is None:
                raise HubError(400, "commit body must start with a 'header' line")
            if kind not in ("file", "lfsFile", "deletedFile", "deletedFolder"):
                raise HubError(400, f"commit line {number}: unknown key {kind!r}, expected one of "
                                    "header, file, lfsFile, deletedFile, deletedFolder")
            path = value.get("path")
            path = check_path(path.rstrip("/") if kind == "deletedFolder" and isinstance(path, str) else path)
            if kind == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"commit line {number}: only base64 'encoding' is supported")
                value = {"path": path, "content": decode_base64(value.get("content"), path)}
            elif kind == "lfsFile":
                if value.get("algo", "sha256") != "sha256" or not isinstance(value.get("oid"), str):
                    raise HubError(400, f"commit line {number}: an lfsFile needs algo 'sha256' and its 'oid'")
                self.server.store.blob_path(value["oid"])
                if value.get("size") is not None and not isinstance(value["size"], int):
                    raise HubError(400, f"commit line {number}: 'size' must be an integer")
                value = {"path": path, "oid": value["oid"], "size": value.get("size")}
            else:
                value = {"path": path}
            operations.append((kind, value))
        if header is None:
            raise HubError(400, "commit body must start with a 'header' line")
        summary = header.get("summary")
        parent = header.get("parentCommit")
        if not isinstance(summary, str) or not summary.strip():
            raise HubError(400, "commit header needs a non-empty 'summary'")
        if parent is not None and not (isinstance(parent, str) and re.fullmatch(r"[0-9a-f]{40}", parent)):
            raise HubError(400, f"commit header 'parentCommit' must be a commit oid, got {parent!r}")
        oid = self.server.store.commit(key, branch, summary, str(header.get("description") or ""), operations,
                                       parent_commit=parent)
        self._json({"success": True, "commitOid": oid, "commitUrl": f"{self._base()}/{key.url_prefix}{key.id}/commit/"
                    f"{oid}", "commitMessage": summary, "hookOutput": "", "pullRequestUrl": None})

    # ---- downloads ----

    def _resolve(self, key: RepoKey, revision: str, path: str) -> None:
        store = self.server.store
        check_path(path)
        oid = store.resolve(key, revision)
        entry = store.commit_record(key, oid)["files"].get(path)
        if entry is None:
            raise HubError(404, f"{path!r} not found at {revision} in {key.id}", "EntryNotFound")
        size = entry["size"]
        start, end, status = 0, size - 1, 200
        spec = self.headers.get("Range")
        if spec:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
            if match is None or match.groups() == ("", ""):
                raise HubError(416, f"unsupported Range {spec!r}: expected one 'bytes=start-end' range")
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:
                start, end = max(size - int(last), 0), size - 1
            if start >= size or start > end:
                self._send(416, b"", headers={"Content-Range": f"bytes */{size}"})
                return
            status = 206
        etag = entry["sha256"] if entry["lfs"] else entry["oid"]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", oid)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with store.open_blob(entry["sha256"]) as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining:
                data = f.read(min(remaining, CHUNK))
                if not data:
                    break
                self.wfile.write(data)
                remaining -= len(data)


def main(argv: list[str] | None = None) -> int:
    """``scl-hf hub serve``: serve a store folder until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(prog="scl-hf hub serve", allow_abbrev=False,
                                     description="Serve an embedded Hub from a folder.")
    parser.add_argument("--root", required=True, help="store folder (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port; default: 8080)")
    parser.add_argument("--token", default=None, help="write token; required when --host is not loopback")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    return serve(args.root, host=args.host, port=args.port, token=args.token, verbose=args.verbose)


def serve(root: str | Path, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          verbose: bool = False) -> int:
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise ValueError(f"--host {host} exposes the Hub beyond this machine: give a write --token too")
    server = HubServer(root, host=host, port=port, token=token)
    server.verbose = verbose
    print(f"scl-hf embedded Hub serving {Path(root).resolve()} at {server.url}", flush=True)
    print(f"use it with: HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
