"""The embedded Hub server: the part of the Hub HTTP API that huggingface_hub, transformers, datasets and evaluate use.

No Hub is reachable from development machines and CI, and no installable package offers a
write-capable one, so scl_hf serves its own (standard library only, plus PyYAML to read cards).
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

Safety: binds to 127.0.0.1 unless told otherwise. When a ``token`` is configured, every write needs
``Authorization: Bearer <token>``, and a private repo reads as missing (404 RepoNotFound, as on the
Hub) without it; LFS upload URLs carry an HMAC signature instead (clients send the PUT without
headers). Without a token everyone may write and private repos are readable. Malformed requests
get a 4xx with a JSON ``{"error": ...}`` body, ``X-Error-Message`` and, where the Hub has one, an
``X-Error-Code``, before anything is written; a full disk is a 507 that leaves nothing half written.

Limits, so that no request (a token is not needed for most) can make the server read, hold or
compute without bound:

- request bodies, checked before they are read (chunked ones chunk by chunk; malformed chunking is a 400):
  validate-yaml 1 MiB (a whole README.md), other JSON and form bodies 4 MiB (the clients send at
  most 256 files or objects per call), commits 64 MiB of NDJSON; an LFS upload exactly its announced size
  (at most 1 TiB), streamed to disk. A regular file in a commit has at most 10 MiB, as on the Hub.
- card metadata: the YAML block must end within the first 256 KiB of README.md, nest at most 64
  levels, and stay under about 1 MiB once aliases and merge keys are expanded; it is served as JSON
  the way the Hub serves it (dates as ISO strings, NaN and infinities as null). Sets and binary have
  no JSON form and are refused. validate-yaml and the commit route refuse exactly what model_info
  could not serve; a card stored before these checks is served as no card, never as an error.
- connections: at most 64 are served at once (more wait in the listen backlog), and one that sends
  nothing for 60 s, idle between requests or stalled inside a body, is closed.

    scl-hf hub serve --root runs/hub [--port 8080] [--token_file FILE]   (or SCL_HF_HUB_TOKEN=...)
"""

from __future__ import annotations

import argparse
import errno
import functools
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import sys
import threading
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from scl_hf.errors import SclHfError
from scl_hf.hub.store import (
    DEFAULT_BRANCH,
    LFS_EXTENSIONS,
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
TOKEN_ENV = "SCL_HF_HUB_TOKEN"  # where `hub serve` finds the token when no flag gives it (keeps it out of `ps`)
MAX_YAML_BODY = 1 << 20  # validate-yaml bodies: one README.md, JSON-encoded
MAX_JSON_BYTES = 4 << 20  # other JSON and form bodies (preupload and LFS batch lists, paths-info forms)
MAX_COMMIT_BYTES = 64 << 20  # NDJSON commit bodies: regular files travel inside, base64-encoded
MAX_LFS_BYTES = 1 << 40
LFS_THRESHOLD = 10 << 20  # files of this size or more go through LFS, and a regular file may not be larger (the Hub's)
MAX_CARD_BYTES = 256 << 10  # the metadata block must end within this many bytes of README.md
MAX_CARD_DEPTH = 64  # nesting levels in card metadata (model-index needs 6)
MAX_CARD_SIZE = 1 << 20  # card metadata with aliases and merge keys expanded: about this many JSON characters
MAX_WORKERS = 64  # connections served at once
TIMEOUT = 60.0  # seconds a connection may send nothing, between requests or inside a body
MAX_TRAILERS = 32  # header lines after the last chunk of a chunked body
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
CHUNK = 1 << 20
_TYPES = {f"{t}s": t for t in REPO_TYPES}  # URL segment -> repo type
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.S)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(;[^\r\n]*)?\r?\n")  # hex digits only: no sign, 0x or '_'
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII digits only: str.isdigit() also takes '²' and '١'


def upload_mode(path: str, size: int, sample: bytes) -> str:
    """'lfs' for binaries and large files, 'regular' otherwise (the Hub's rule, with a fixed extension list)."""
    if size >= LFS_THRESHOLD or path.lower().endswith(LFS_EXTENSIONS) or b"\0" in sample:
        return "lfs"
    return "regular"


def parse_json(data: bytes | str, what: str) -> object:
    """JSON from a client, or a 400 naming ``what`` (also for nesting too deep to parse)."""
    try:
        return json.loads(data)
    except ValueError:
        raise HubError(400, f"{what} is not valid JSON") from None
    except RecursionError:
        raise HubError(400, f"{what} is nested too deeply") from None


# ---- card metadata ----

class _CardLoader(yaml.SafeLoader):
    """yaml.SafeLoader with bounds: nesting depth while composing, pairs copied by merge keys while constructing.

    Aliases stay allowed (yaml.dump writes them for shared objects); their expansion is bounded when the
    metadata is turned into JSON (``card_json``). Merge keys need a bound of their own: ten merges of a
    mapping that merges ten others copy pairs tenfold per level before any JSON is written.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth, self.merged = 0, 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_CARD_DEPTH:
                raise yaml.YAMLError(f"metadata nested deeper than {MAX_CARD_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def flatten_mapping(self, node):
        super().flatten_mapping(node)  # calls itself (this method) for each merged mapping first
        self.merged += len(node.value)
        if self.merged > MAX_CARD_SIZE:
            raise yaml.YAMLError(f"merge keys ('<<') expand the metadata to more than {MAX_CARD_SIZE} pairs")


_NOT_JSON = {set: "a set (!!set)", bytes: "binary data (!!binary)"}


def card_json(data: object) -> object:
    """Card metadata as the Hub serves it: dates as ISO strings, NaN and infinities as null (JavaScript's JSON),
    keys as strings. A 400 for what JSON cannot hold: sets, binary, recursive aliases, more than MAX_CARD_SIZE
    once aliases are expanded."""
    budget = MAX_CARD_SIZE
    open_containers: set[int] = set()  # on the path from the root: an alias back to one of them never ends

    def convert(value: object, depth: int) -> object:
        nonlocal budget
        budget -= 1 + (len(value) if isinstance(value, str) else 0)
        if budget < 0:
            raise HubError(400, f"YAML metadata in README.md is larger than {MAX_CARD_SIZE} characters as JSON, "
                                "with its aliases expanded")
        if depth > MAX_CARD_DEPTH:
            raise HubError(400, f"YAML metadata in README.md is nested deeper than {MAX_CARD_DEPTH} levels, "
                                "with its aliases expanded")
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, datetime):  # YAML timestamps without a zone are UTC
            if value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            return value.isoformat(timespec="milliseconds") + "Z"
        if isinstance(value, date):
            return value.isoformat()
        if not isinstance(value, (list, tuple, dict)):
            what = _NOT_JSON.get(type(value), type(value).__name__)
            raise HubError(400, f"YAML metadata in README.md holds {what}, which JSON cannot represent")
        if id(value) in open_containers:
            raise HubError(400, "YAML metadata in README.md holds a recursive alias (an anchor used inside itself)")
        open_containers.add(id(value))
        try:
            if isinstance(value, dict):
                return {_json_key(convert(k, depth + 1)): convert(v, depth + 1) for k, v in value.items()}
            return [convert(v, depth + 1) for v in value]
        finally:
            open_containers.discard(id(value))

    return convert(data, 1)


def _json_key(key: object) -> str:
    """A mapping key as a JSON object key: YAML's 1, true and null keys become "1", "true" and "null"."""
    return key if isinstance(key, str) else json.dumps(key)


def card_data(head: bytes, size: int) -> dict | None:
    """The metadata of a README.md as served JSON data: None without a metadata block, else a dict; a 400 HubError
    saying why when it cannot be served.

    ``head`` is the start of the file (at least MAX_CARD_BYTES bytes of it when it is longer) and ``size`` its
    length. Only the first MAX_CARD_BYTES bytes count, so validate-yaml, the commit route and model_info, which
    all call this, judge exactly the same bytes.
    """
    head = head[:MAX_CARD_BYTES]
    text = head.decode("utf-8", "replace")
    match = _FRONT_MATTER.match(text)
    cut = len(head) < size  # the file goes on past what we read
    if match is None or (cut and match.end() == len(text)):
        if cut and re.match(r"---\s*\n", text):
            raise HubError(400, f"the YAML metadata block of README.md must end within its first {MAX_CARD_BYTES} "
                                "bytes")
        return None
    try:
        data = yaml.load(match.group(1), Loader=_CardLoader)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as err:  # ValueError: 2024-13-45, huge ints
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise HubError(400, f"invalid YAML metadata in README.md: {message}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HubError(400, f"YAML metadata in README.md must be a mapping, got {type(data).__name__}")
    return card_json(data)


class HubServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer bound to a Store. ``url`` is where clients reach it.

    At most ``max_workers`` connections are served at once, each by its own thread; a connection that
    sends nothing for ``timeout`` seconds is closed.
    """

    daemon_threads = True  # a hung client never keeps the process alive
    allow_reuse_address = True
    request_queue_size = 128  # connections waiting for a free worker wait in the kernel's accept queue

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None, *,
                 max_workers: int = MAX_WORKERS, timeout: float = TIMEOUT):
        self.store = Store(root)
        self.token = token
        self.secret = secrets.token_bytes(32)  # signs LFS upload URLs
        self.request_timeout = timeout  # not `timeout`: socketserver uses that name for handle_request()
        self.card = functools.lru_cache(maxsize=256)(self._card)  # README.md blobs are immutable: parse each once
        self._workers = threading.BoundedSemaphore(max_workers)
        self._closing = False
        self._thread: threading.Thread | None = None
        super().__init__((host, port), HubRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def sign(self, key: RepoKey, oid: str, size: int) -> str:
        return hmac.new(self.secret, f"{key.type}/{key.id}/{oid}/{size}".encode(), hashlib.sha256).hexdigest()

    def _card(self, sha256: str, size: int) -> dict | None:
        """The served metadata of a README.md blob; None when it has none or cannot be served (stored before
        the commit route checked cards): the repo is then served without it."""
        with self.store.open_blob(sha256) as f:
            head = f.read(MAX_CARD_BYTES)
        try:
            return card_data(head, size)
        except HubError:
            return None

    def process_request(self, request, client_address) -> None:
        # The accept loop waits here for a free worker; connections beyond it wait in the accept queue.
        while not self._workers.acquire(timeout=0.5):
            if self._closing:
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._workers.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._workers.release()

    def start(self) -> HubServer:
        """Serve from a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="scl-hf-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (waits for the serving thread)."""
        self._closing = True
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

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # on every read and write of this connection
        super().setup()

    def _has_body(self) -> bool:
        return self.headers.get("Transfer-Encoding") is not None or self.headers.get(
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
        except (ConnectionError, TimeoutError):  # the client left, or sent nothing for `timeout` seconds
            self.close_connection = True
        except OSError as err:
            if err.errno not in DISK_FULL:
                self._error(HubError(500, f"internal error: {type(err).__name__}: {err}"))
                raise
            self._error(HubError(507, "the embedded Hub's disk is full: nothing was written; free space and retry",
                                 "InsufficientStorage"))
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

    @staticmethod
    def _header_text(message: str) -> str:
        """The first line of ``message`` for an X-Error-Message header (headers are latin-1: a request's text
        echoed back is escaped)."""
        return (message.splitlines() or [""])[0][:200].encode("ascii", "backslashreplace").decode()

    def _error(self, err: HubError) -> None:
        headers = {"X-Error-Message": self._header_text(err.message)}
        if err.code:
            headers["X-Error-Code"] = err.code
        if not self._body_read:  # drain a small unread body to keep the connection usable
            length = self._content_length()
            if length is not None and length <= (1 << 20) and self.headers.get("Transfer-Encoding") is None:
                self.rfile.read(length)
                self._body_read = True
        if err.status >= 500 or not self._body_read:
            self.close_connection = True
            headers["Connection"] = "close"  # tell the client not to reuse this connection
        self._json({"error": err.message}, err.status, headers)

    def _content_length(self) -> int | None:
        """The one Content-Length, in ASCII digits (0 without one); None when it is malformed or repeated."""
        values = self.headers.get_all("Content-Length") or ["0"]
        text = values[0].strip()
        return int(text) if len(values) == 1 and _DIGITS.fullmatch(text) else None

    def _chunks(self, limit: int):
        """The request body in pieces, from Content-Length or chunked transfer encoding, at most ``limit`` bytes.

        Each size is checked against ``limit`` before the bytes it announces are read (a 413); a malformed
        size line, chunk end or trailer section is a 400. Either closes the connection, the body unread.
        """
        self._body_read = True
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                raise self._unread(HubError(400, f"unsupported Transfer-Encoding {encoding!r}: only 'chunked' is"))
            yield from self._chunked(limit)
            return
        length = self._content_length()
        if length is None:
            raise self._unread(HubError(400, f"invalid Content-Length {self.headers.get('Content-Length')!r}"))
        if length > limit:
            raise self._unread(HubError(413, f"request body of {length} bytes is over this route's limit of {limit} "
                                             "bytes"))
        yield from self._exactly(length)

    def _chunked(self, limit: int):
        total = 0
        while True:
            match = _CHUNK_SIZE.fullmatch(self.rfile.readline(1024))
            if match is None:
                raise self._unread(HubError(400, "malformed chunked request body: bad chunk size line"))
            size = int(match.group(1), 16)
            if size == 0:
                break
            total += size
            if total > limit:
                raise self._unread(HubError(413, f"chunked request body is over this route's limit of {limit} bytes"))
            yield from self._exactly(size)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise self._unread(HubError(400, "malformed chunked request body: a chunk is longer than its size"))
        for _ in range(MAX_TRAILERS):
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            if line in (b"\r\n", b"\n"):
                return
        raise self._unread(HubError(400, f"malformed chunked request body: more than {MAX_TRAILERS} trailer lines"))

    def _exactly(self, length: int):
        while length:
            data = self.rfile.read(min(length, CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            length -= len(data)
            yield data

    def _unread(self, err: HubError) -> HubError:
        """``err``, about a body left (partly) unread: the connection cannot carry another request."""
        self._body_read = False
        return err

    def _body(self, limit: int = MAX_JSON_BYTES) -> bytes:
        return b"".join(self._chunks(limit))

    def _json_body(self, limit: int = MAX_JSON_BYTES) -> dict:
        data = parse_json(self._body(limit) or b"{}", "request body")
        if not isinstance(data, dict):
            raise HubError(400, "request body must be a JSON object")
        return data

    def _authorized(self) -> bool:
        """True without a configured token, else when the request presents it."""
        if self.server.token is None:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode())

    def _require_write(self) -> None:
        """When a token is configured, writes must present it."""
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header: this embedded Hub needs its write "
                                "token for writes")

    def _require_read(self, key: RepoKey) -> None:
        """When a token is configured, a private repo is readable only with it; without, it does not exist (as on
        the Hub: 404 RepoNotFound, the same answer as for a missing repo)."""
        if not self._authorized() and self.server.store.repo_meta(key).get("private"):
            raise HubError(404, f"{key.type} repository {key.id!r} not found", "RepoNotFound")

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
        if method in ("GET", "HEAD") or (method == "POST" and action in ("paths-info", "preupload")):
            self._require_read(key)
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
                start = _string(body, "startingPoint", DEFAULT_BRANCH)
                store.create_ref(key, kind, args[0], start)
            else:
                store.create_ref(key, kind, _string(body, "tag", None), args[0], _string(body, "message", ""))
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
        body = self._json_body(MAX_YAML_BODY)
        content = body.get("content")
        if not isinstance(content, str):
            raise HubError(400, "validate-yaml needs a string 'content'")
        data = content.encode("utf-8", "replace")
        try:
            card_data(data[:MAX_CARD_BYTES], len(data))  # what the commit route checks, and model_info serves
        except HubError as err:
            return self._json({"errors": [{"message": err.message}], "warnings": []}, 400,
                              {"X-Error-Message": self._header_text(err.message)})
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
            if meta.get("private") and not self._authorized():
                continue
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
        if readme is not None:
            card = self.server.card(readme["sha256"], readme["size"])
            if card:
                info["cardData"] = card
                for field in ("library_name", "pipeline_tag"):
                    if isinstance(card.get(field), str):
                        info[field] = card[field]
                if isinstance(card.get("tags"), list):
                    info["tags"] = [t for t in card["tags"] if isinstance(t, str)]
        return info

    @staticmethod
    def _pointer_size(entry: dict) -> int:
        """Bytes of the git-LFS pointer file that stands for an LFS entry in git."""
        return len(LFS_POINTER.format(oid=entry["sha256"], size=entry["size"]))

    @classmethod
    def _sibling(cls, path: str, entry: dict, blobs: bool) -> dict:
        sibling = {"rfilename": path}
        if blobs:
            sibling.update(size=entry["size"], blobId=entry["oid"])
            if entry["lfs"]:
                sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"],
                                  "pointerSize": cls._pointer_size(entry)}
        return sibling

    # ---- trees ----

    @classmethod
    def _file_item(cls, path: str, entry: dict) -> dict:
        item = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": cls._pointer_size(entry)}
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
            data = parse_json(body or "{}", "paths-info body")
            if not isinstance(data, dict):
                raise HubError(400, "paths-info body is not a JSON object")
            paths = data.get("paths", [])
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
        out, git_oids = [], {}  # git_oids: sha256 -> git oid of the LFS files this request read
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
                elif current["size"] == item["size"]:  # stored through LFS, asked about as regular: < 10 MiB
                    sha = current["sha256"]
                    if sha not in git_oids:
                        with store.open_blob(sha) as f:
                            git_oids[sha] = git_blob_oid(f.read())
                    entry["oid"] = git_oids[sha]
                # else the sizes differ: the file changed, and no oid tells the client so
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
        if not _DIGITS.fullmatch(size_text):
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
            item = parse_json(line, f"commit line {number}")
            try:
                kind, value = item["key"], item["value"]
            except (KeyError, TypeError, IndexError):
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
                if len(value["content"]) > LFS_THRESHOLD:
                    raise HubError(400, f"commit line {number}: {path!r} has {len(value['content'])} bytes, and a "
                                        f"regular file may have at most {LFS_THRESHOLD} (10 MiB): send it through LFS")
                if path == "README.md":  # a card that model_info could not serve is refused, as validate-yaml does
                    card_data(value["content"][:MAX_CARD_BYTES], len(value["content"]))
            elif kind == "lfsFile":
                if value.get("algo", "sha256") != "sha256" or not isinstance(value.get("oid"), str):
                    raise HubError(400, f"commit line {number}: an lfsFile needs algo 'sha256' and its 'oid'")
                self.server.store.blob_path(value["oid"])
                if value.get("size") is not None and not isinstance(value["size"], int):
                    raise HubError(400, f"commit line {number}: 'size' must be an integer")
                value = {"path": path, "oid": value["oid"], "size": value.get("size")}
                if path == "README.md" and self.server.store.has_blob(value["oid"]):
                    with self.server.store.open_blob(value["oid"]) as f:
                        card_data(f.read(MAX_CARD_BYTES), self.server.store.blob_path(value["oid"]).stat().st_size)
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
        self._require_read(key)
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


def _string(body: dict, name: str, default: str | None) -> str:
    """``body[name]`` if it is a string, ``default`` if it is absent or null; a 400 otherwise (or with no default)."""
    value = body.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise HubError(400, f"'{name}' must be a string, got {'null' if value is None else type(value).__name__}")
    return value


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``scl-hf hub serve`` (read them back with ``serve_from_args``)."""
    parser.add_argument("--root", required=True, metavar="DIR",
                        help="store folder, e.g. runs/hub (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: 8080)")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help="write token that clients must send, also to read private repos; required "
                                       "with a --host other than loopback. A flag shows in `ps`: prefer --token_file, "
                                       f"or set {TOKEN_ENV}, which is read when neither flag is given")
    token.add_argument("--token_file", metavar="FILE", help="read the write token from FILE (whitespace stripped)")
    parser.add_argument("--verbose", action="store_true", help="log every request")


def serve_from_args(args: argparse.Namespace) -> int:
    """Serve as the ``add_serve_arguments`` flags say; the token from --token, --token_file or $SCL_HF_HUB_TOKEN."""
    token = args.token
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as err:
            raise SclHfError(f"cannot read --token_file: {err}") from None
        if not token:
            raise SclHfError(f"--token_file {args.token_file} is empty")
    elif token is None:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
    elif not token.strip():
        raise SclHfError("--token is empty")
    return serve(args.root, host=args.host, port=args.port, token=token, verbose=args.verbose)


def main(argv: list[str] | None = None) -> int:
    """``python -m scl_hf.hub.server``: the same as ``scl-hf hub serve``."""
    parser = argparse.ArgumentParser(prog="scl-hf hub serve", allow_abbrev=False,
                                     description="Serve an embedded Hub from a folder.")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve_from_args(args)
    except SclHfError as err:  # bad input: one clear line, no traceback (as scl-hf's other commands)
        print(f"scl-hf hub serve: error: {err}", file=sys.stderr)
        return 2


def serve(root: str | Path, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          verbose: bool = False) -> int:
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise SclHfError(f"--host {host} exposes the Hub beyond this machine: give a write token too "
                         f"(--token_file, ${TOKEN_ENV} or --token)")
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
