"""The embedded Hub server against hostile and broken input: each case once answered 500, hung a thread,
read or answered far more than it should, or leaked a private repo.

Every server here listens on 127.0.0.1; every request loop is bounded in count, and every socket has a
timeout, so a regression fails instead of hanging.
"""

import base64
import errno
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from scl_hf.hub.server import HubServer
from scl_hf.hub.store import RepoKey, Store, git_blob_oid

REPO = "scl-hf/toy"
KEY = RepoKey("model", REPO)
WEIGHTS = bytes(range(256)) * 40  # LFS (NUL bytes)
MiB = 1 << 20


@pytest.fixture
def server(tmp_path):
    srv = HubServer(tmp_path / "hub").start()
    yield srv
    srv.stop()


def seed(srv: HubServer, token=False, repo: str = REPO, private: bool = False) -> str:
    api = HfApi(endpoint=srv.url, token=token)
    api.create_repo(repo, private=private)
    return api.create_commit(repo, [CommitOperationAdd("notes/a.txt", b"hello\n"),
                                    CommitOperationAdd("weights.bin", WEIGHTS)], commit_message="first").oid


def request(srv: HubServer, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One HTTP request on a fresh connection: ``(status, headers, body)``."""
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def raw(srv: HubServer, data: bytes, timeout: float = 5.0) -> tuple[int, http.client.HTTPMessage, bytes, bool]:
    """Send ``data`` as is (the socket stays open for writing), read one response.

    Returns ``(status, headers, body, closed)`` where ``closed`` says the server then closed the connection.
    A server that waits for more bytes makes this raise ``TimeoutError`` after ``timeout`` seconds.
    """
    sock = socket.create_connection(srv.server_address[:2], timeout=timeout)
    try:
        sock.sendall(data)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        body = resp.read()
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        return resp.status, resp.headers, body, closed
    finally:
        sock.close()


def head(method: str, path: str, **headers) -> bytes:
    """A request head; ``Content_Length=5`` becomes ``Content-Length: 5``."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ndjson(*items: dict) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def commit_body(*files: tuple[str, bytes], summary: str = "x") -> bytes:
    ops = [{"key": "file", "value": {"path": p, "content": base64.b64encode(d).decode(), "encoding": "base64"}}
           for p, d in files]
    return ndjson({"key": "header", "value": {"summary": summary, "description": ""}}, *ops)


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def head_commit(srv: HubServer, repo: str = REPO) -> str:
    return srv.store.refs(RepoKey("model", repo))["branches"]["main"]


# ---- card YAML ----

def alias_bomb(levels: int) -> str:
    """Ten aliases per level: the card expands tenfold per level when written out as JSON."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines)


UNSERVABLE_CARDS = {
    "alias bomb": alias_bomb(7),
    "set": "tags: !!set {a, b}",
    "binary": "blob: !!binary aGVsbG8=",
    "recursive alias": "loop: &a [1, *a]",
    "recursive mapping alias": "loop: &a {self: *a}",
    "deep nesting": "deep: " + "[" * 100_000 + "]" * 100_000,
    "impossible date": "date: 2024-13-45",
    "integer of 5000 digits": "n: " + "9" * 5000,
    "front matter over 256 KiB": "a: " + "x" * (300 << 10),
}


@pytest.mark.parametrize("name", list(UNSERVABLE_CARDS))
def test_validate_yaml_and_commit_refuse_what_cannot_be_served(server, name):
    seed(server)
    before = snapshot(server.store.root)
    readme = f"---\n{UNSERVABLE_CARDS[name]}\n---\n# card\n"
    status, _, body = request(server, "POST", "/api/validate-yaml",
                              json.dumps({"content": readme, "repoType": "model"}).encode())
    assert status == 400, (name, status, body[:300])
    assert [set(e) for e in json.loads(body)["errors"]] == [{"message"}]
    status, headers, body = request(server, "POST", f"/api/models/{REPO}/commit/main",
                                    commit_body(("README.md", readme.encode())))
    assert status == 400, (name, status, body[:300])
    assert "README.md" in json.loads(body)["error"] and "README.md" in headers["X-Error-Message"]
    assert snapshot(server.store.root) == before


def test_hfapi_upload_of_a_set_card_is_refused_before_upload(server):
    seed(server)
    api = HfApi(endpoint=server.url, token=False)
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=b"---\ntags: !!set {a, b}\n---\n", path_in_repo="README.md", repo_id=REPO)


CARD = """---
license: mit
date: 2024-01-01
released: 2001-12-14t21:59:43.10-05:00
naive: 2001-12-14 21:59:43.10
ratio: .nan
limit: -.inf
2: two
true: yes-key
~: null-key
2024-02-03: dated key
pairs: !!omap [a: 1, b: 2]
nested: {when: 2024-01-01, list: [2024-01-02, 1.5, 0x10]}
shared: &s [x, y]
again: *s
merged: {<<: {k: v}, own: 1}
tags: [a, 2]
---
# card
"""

CARD_JSON = {
    "license": "mit", "date": "2024-01-01", "released": "2001-12-15T02:59:43.100Z",
    "naive": "2001-12-14T21:59:43.100Z", "ratio": None, "limit": None, "2": "two", "true": "yes-key",
    "null": "null-key", "2024-02-03": "dated key", "pairs": [["a", 1], ["b", 2]],
    "nested": {"when": "2024-01-01", "list": ["2024-01-02", 1.5, 16]}, "shared": ["x", "y"], "again": ["x", "y"],
    "merged": {"k": "v", "own": 1}, "tags": ["a", 2],
}


def test_every_yaml_scalar_serves_as_json(server):
    seed(server)
    api = HfApi(endpoint=server.url, token=False)
    api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id=REPO)  # validate-yaml: fine
    status, _, body = request(server, "GET", f"/api/models/{REPO}")
    assert status == 200, body[:300]
    info = json.loads(body, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert info["cardData"] == CARD_JSON and info["tags"] == ["a"]
    status, _, body = request(server, "GET", "/api/models")
    assert status == 200 and [r["cardData"] for r in json.loads(body)] == [CARD_JSON]
    assert api.model_info(REPO).card_data.license == "mit"


def test_a_card_that_cannot_be_served_breaks_no_listing(server):
    """Cards written by an older server (straight into the store here): served without cardData, never a 500."""
    good = "scl-hf/good"
    seed(server, repo=good)
    store = server.store
    store.commit(RepoKey("model", good), "main", "card", "", [("file", {"path": "README.md",
                                                                        "content": b"---\nlicense: mit\n---\n"})])
    broken = ["alias bomb", "set", "binary", "recursive alias", "impossible date"]
    for i, name in enumerate(broken):
        key = RepoKey("model", f"scl-hf/broken{i}")
        store.create_repo(key)
        card = alias_bomb(5) if name == "alias bomb" else UNSERVABLE_CARDS[name]  # 10**5 leaves: bounded even today
        readme = f"---\n{card}\n---\n".encode()
        store.commit(key, "main", "card", "", [("file", {"path": "README.md", "content": readme})])
    status, _, body = request(server, "GET", "/api/models")
    assert status == 200, body[:300]
    listing = {r["id"]: r.get("cardData") for r in json.loads(body)}
    assert listing == {good: {"license": "mit"}, **{f"scl-hf/broken{i}": None for i in range(len(broken))}}
    for i in range(len(broken)):
        status, _, body = request(server, "GET", f"/api/models/scl-hf/broken{i}")
        assert status == 200 and "cardData" not in json.loads(body), (broken[i], status, body[:300])


# ---- request bodies ----

BAD_CHUNKS = {
    "negative size": (b"-1\r\n" + b"x" * 65536, 400),
    "plus sign": (b"+4\r\nabcd\r\n0\r\n\r\n", 400),
    "0x prefix": (b"0x4\r\nabcd\r\n0\r\n\r\n", 400),
    "underscore": (b"0_4\r\nabcd\r\n0\r\n\r\n", 400),
    "not hex": (b"zz\r\nabcd\r\n0\r\n\r\n", 400),
    "chunk longer than its size": (b"2\r\nabcd\r\n0\r\n\r\n", 400),
    "size over the route's limit": (b"%x\r\n" % (2 * MiB) + b"x" * 65536, 413),
    "total over the route's limit": (b"%x\r\n" % (MiB // 2) + b"x" * (MiB // 2) + b"\r\n"
                                     + b"%x\r\n" % (MiB // 2 + 1) + b"x" * 65536, 413),
    "endless trailers": (b"0\r\n" + b"X-T: 1\r\n" * 200, 400),
}


@pytest.mark.parametrize("name", list(BAD_CHUNKS))
def test_malformed_or_oversized_chunked_bodies(server, name):
    data, expected = BAD_CHUNKS[name]
    status, headers, body, closed = raw(server, head("POST", "/api/validate-yaml", Transfer_Encoding="chunked") + data)
    assert (status, closed) == (expected, True), (name, status, body[:200])
    assert headers["Connection"] == "close" and "error" in json.loads(body)
    assert request(server, "GET", "/api/whoami-v2")[0] == 200  # and the server still serves


def test_a_good_chunked_body_still_works(server):
    payload = json.dumps({"content": "---\nlicense: mit\n---\n"}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:5], payload[5:])) + b"0\r\n\r\n"
    status, _, body, _ = raw(server, head("POST", "/api/validate-yaml", Transfer_Encoding="chunked") + chunked)
    assert (status, json.loads(body)) == (200, {"errors": [], "warnings": []})


@pytest.mark.parametrize("route, limit", [("/api/validate-yaml", MiB), ("/api/repos/create", 4 * MiB),
                                          (f"/api/models/{REPO}/preupload/main", 4 * MiB),
                                          (f"/api/models/{REPO}/paths-info/main", 4 * MiB),
                                          (f"/api/models/{REPO}/commit/main", 64 * MiB)])
def test_each_route_refuses_a_body_over_its_limit_before_reading_it(server, route, limit):
    seed(server)
    status, _, body, closed = raw(server, head("POST", route, Content_Length=limit + 1))
    assert (status, closed) == (413, True), (route, status, body[:200])
    assert str(limit) in json.loads(body)["error"]


@pytest.mark.parametrize("value", ["-1", "+5", "²", "1_0", "0x10", "5, 5"])
def test_a_malformed_content_length_is_a_400(server, value):
    status, _, _, closed = raw(server, head("POST", "/api/validate-yaml", Content_Length=value) + b"{}")
    assert (status, closed) == (400, True), value


def test_a_body_shorter_than_its_content_length_times_out(tmp_path):
    srv = HubServer(tmp_path / "hub", timeout=0.5).start()
    try:
        sock = socket.create_connection(srv.server_address[:2], timeout=10)
        sock.sendall(head("POST", "/api/validate-yaml", Content_Length=100) + b'{"content": ')
        assert sock.recv(1024) == b""  # the server gave up on the body and closed the connection
        sock.close()
        idle = socket.create_connection(srv.server_address[:2], timeout=10)
        assert idle.recv(1024) == b""  # and a connection that never sends a request
        idle.close()
        assert request(srv, "GET", "/api/whoami-v2")[0] == 200
    finally:
        srv.stop()


def handler_threads(baseline: set) -> int:
    """Connection threads started since ``baseline`` (other tests' servers may still have some open)."""
    return sum("process_request_thread" in t.name and t.ident not in baseline for t in threading.enumerate())


def test_worker_threads_are_capped_and_idle_connections_time_out(tmp_path):
    srv = HubServer(tmp_path / "hub", max_workers=4, timeout=0.5).start()
    try:
        baseline = {t.ident for t in threading.enumerate()}
        idle = [socket.create_connection(srv.server_address[:2], timeout=20) for _ in range(12)]
        counts = []
        for _ in range(10):
            counts.append(handler_threads(baseline))
            time.sleep(0.05)
        assert max(counts) <= 4, counts
        assert [s.recv(1) for s in idle] == [b""] * 12  # each one is served in turn and times out
        for s in idle:
            s.close()
        assert request(srv, "GET", "/api/whoami-v2")[0] == 200
    finally:
        srv.stop()


# ---- unauthenticated heavy work ----

def test_preupload_does_not_read_stored_files(server, monkeypatch):
    seed(server)
    store = server.store
    small, big = b"small LFS text\n", b"y" * (12 * MiB)  # stored through LFS, asked about as regular files
    ops = [("lfsFile", {"path": p, "oid": store.put_blob(d), "size": len(d)}) for p, d in (("s.txt", small),
                                                                                          ("big.txt", big))]
    store.commit(KEY, "main", "lfs texts", "", ops)
    reads = []
    real_open_blob = Store.open_blob

    def counting_open_blob(self, sha256):
        reads.append(sha256)
        return real_open_blob(self, sha256)

    monkeypatch.setattr(Store, "open_blob", counting_open_blob)
    files = [{"path": "big.txt", "size": 1, "sample": ""}] * 20 + [{"path": "s.txt", "size": len(small),
                                                                      "sample": base64.b64encode(small).decode()}] * 3
    body = json.dumps({"files": files}).encode()
    status, _, body = request(server, "POST", f"/api/models/{REPO}/preupload/main", body)
    assert status == 200, body[:300]
    answer = json.loads(body)["files"]
    assert answer[0] == {"path": "big.txt", "uploadMode": "regular", "shouldIgnore": False}  # changed: no oid
    assert answer[-1] == {"path": "s.txt", "uploadMode": "regular", "shouldIgnore": False, "oid": git_blob_oid(small)}
    assert reads == [hashlib.sha256(small).hexdigest()]  # one read of the small file, none of the big one


# ---- private repos ----

def test_private_repos_are_read_only_with_the_token(tmp_path):
    srv = HubServer(tmp_path / "hub", token="s3cret").start()
    try:
        seed(srv, token="s3cret", private=True)
        seed(srv, token="s3cret", repo="scl-hf/open")
        auth = {"Authorization": "Bearer s3cret"}
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        preupload = json.dumps({"files": [{"path": "a.txt", "size": 1, "sample": ""}]}).encode()
        reads = [("GET", "/api/models/{}", None, {}), ("GET", "/api/models/{}/revision/main", None, {}),
                 ("GET", "/api/models/{}/tree/main", None, {}), ("POST", "/api/models/{}/paths-info/main",
                                                                 b"paths=weights.bin", form),
                 ("POST", "/api/models/{}/preupload/main", preupload, {}), ("GET", "/api/models/{}/refs", None, {}),
                 ("GET", "/api/models/{}/commits/main", None, {}), ("HEAD", "/{}/resolve/main/weights.bin", None, {}),
                 ("GET", "/{}/resolve/main/weights.bin", None, {})]
        for method, path, body, headers in reads:
            status, got, _ = request(srv, method, path.format(REPO), body, headers)
            assert (status, got["X-Error-Code"]) == (404, "RepoNotFound"), (method, path, status)
            status, _, data = request(srv, method, path.format(REPO), body, {**headers, **auth})
            assert status == 200, (method, path, status, data[:200])
            assert request(srv, method, path.format("scl-hf/open"), body, headers)[0] == 200, (method, path)
        assert [r["id"] for r in json.loads(request(srv, "GET", "/api/models")[2])] == ["scl-hf/open"]
        assert [r["id"] for r in json.loads(request(srv, "GET", "/api/models", headers=auth)[2])] == ["scl-hf/open",
                                                                                                     REPO]
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=srv.url, token=False).model_info(REPO)
        assert HfApi(endpoint=srv.url, token="s3cret").model_info(REPO).private is True
    finally:
        srv.stop()


def test_without_the_token_every_raw_write_is_refused(tmp_path):
    srv = HubServer(tmp_path / "hub", token="s3cret").start()
    try:
        seed(srv, token="s3cret")
        before = snapshot(srv.store.root)
        lfs = {"operation": "upload", "objects": [{"oid": "a" * 64, "size": 1}]}
        writes = [("POST", "/api/repos/create", json.dumps({"name": "new", "organization": "scl-hf"}).encode()),
                  ("POST", f"/api/models/{REPO}/commit/main", commit_body(("x.txt", b"x"))),
                  ("POST", f"/api/models/{REPO}/branch/dev", b"{}"),
                  ("DELETE", f"/api/models/{REPO}/branch/dev", None),
                  ("POST", f"/api/models/{REPO}/tag/main", json.dumps({"tag": "v1"}).encode()),
                  ("DELETE", f"/api/models/{REPO}/tag/v1", None),
                  ("POST", f"/{REPO}.git/info/lfs/objects/batch", json.dumps(lfs).encode())]
        for method, path, body in writes:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                assert request(srv, method, path, body, headers)[0] == 401, (method, path, headers)
        assert snapshot(srv.store.root) == before
    finally:
        srv.stop()


# ---- refs ----

def test_ref_names_that_collide_or_are_not_strings_are_refused(server):
    first = seed(server)
    base = f"/api/models/{REPO}"
    assert request(server, "POST", f"{base}/tag/main", json.dumps({"tag": "v1"}).encode())[0] == 200
    cases = [
        (f"{base}/branch/{quote('refs/heads/main', safe='')}", {}, 400),  # would shadow main for "refs/heads/main"
        (f"{base}/branch/{quote('refs/tags/v1', safe='')}", {}, 400),
        (f"{base}/branch/v1", {}, 409),  # a tag has that name
        (f"{base}/tag/main", {"tag": "main"}, 409),  # a branch has that name
        (f"{base}/tag/main", {"tag": "refs/heads/x"}, 400),
        (f"{base}/tag/main", {"tag": None}, 400),
        (f"{base}/tag/main", {"tag": 5}, 400),
        (f"{base}/tag/main", {}, 400),
        (f"{base}/tag/main", {"tag": "v2", "message": ["not", "text"]}, 400),
        (f"{base}/branch/dev", {"startingPoint": 5}, 400),
        (f"{base}/branch/dev", {"startingPoint": ["main"]}, 400),
    ]
    for path, body, expected in cases:
        status, _, data = request(server, "POST", path, json.dumps(body).encode())
        assert status == expected, (path, body, status, data[:200])
    assert server.store.refs(KEY) == {"branches": {"main": first}, "tags": {"v1": first}}


# ---- status codes ----

DEEP = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_deep_json_and_yaml_are_a_400(server):
    seed(server)
    before = snapshot(server.store.root)
    deep_yaml = "---\na: " + "[" * 100_000 + "]" * 100_000 + "\n---\n"
    cases = [
        ("/api/repos/create", DEEP, {}),
        ("/api/validate-yaml", DEEP, {}),
        ("/api/validate-yaml", json.dumps({"content": deep_yaml}).encode(), {}),
        (f"/api/models/{REPO}/preupload/main", DEEP, {}),
        (f"/api/models/{REPO}/paths-info/main", DEEP, {"Content-Type": "application/json"}),
        (f"/api/models/{REPO}/tag/main", DEEP, {}),
        (f"/api/models/{REPO}/branch/dev", DEEP, {}),
        (f"/{REPO}.git/info/lfs/objects/batch", DEEP, {}),
        (f"/api/models/{REPO}/commit/main", ndjson({"key": "header", "value": {"summary": "x"}}) + DEEP, {}),
        (f"/api/models/{REPO}/commit/main", commit_body(("README.md", deep_yaml.encode())), {}),
    ]
    for path, body, headers in cases:
        status, got, data = request(server, "POST", path, body, headers)
        assert status == 400, (path, status, data[:200])
        assert "X-Error-Message" in got
    assert snapshot(server.store.root) == before


@pytest.mark.parametrize("size", ["²", "١٠", "1e3", "-1"])
def test_an_lfs_size_that_is_not_ascii_digits_is_a_400(server, size):
    seed(server)
    status, _, data = request(server, "PUT", f"/{REPO}.git/info/lfs/objects/{'a' * 64}/{quote(size)}?sig=x", b"x")
    assert status == 400, (size, status, data)


def test_a_regular_file_over_10_mib_is_refused(server):
    seed(server)
    before = snapshot(server.store.root)
    status, headers, body = request(server, "POST", f"/api/models/{REPO}/commit/main",
                                    commit_body(("big.txt", b"z" * (10 * MiB + 1))))
    assert status == 400 and "10485760" in json.loads(body)["error"], (status, body[:200])
    # 150 MiB announced: refused from the headers alone, nothing read
    status, _, _, closed = raw(server, head("POST", f"/api/models/{REPO}/commit/main", Content_Length=200 * MiB))
    assert (status, closed) == (413, True)
    assert snapshot(server.store.root) == before
    ok = request(server, "POST", f"/api/models/{REPO}/commit/main", commit_body(("ok.txt", b"z" * (10 * MiB))))
    assert ok[0] == 200, ok[2][:200]


def test_a_full_disk_is_a_507_and_leaves_nothing_half_written(server, monkeypatch):
    head_before = seed(server)
    store = server.store
    real_write = Store._write_file

    def full_disk(self, path, chunks):
        written = 0
        with open(path, "wb") as f:  # half a file, then the disk is full
            for chunk in chunks:
                f.write(chunk[: max(0, 3 - written)])
                written += len(chunk)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Store, "_write_file", full_disk)
    api = HfApi(endpoint=server.url, token=False)
    data = os.urandom(4096)
    oid = hashlib.sha256(data).hexdigest()
    batch = {"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}
    status, _, body = request(server, "POST", f"/{REPO}.git/info/lfs/objects/batch", json.dumps(batch).encode())
    href = urlsplit(json.loads(body)["objects"][0]["actions"]["upload"]["href"])
    attempts = [
        ("PUT", f"{href.path}?{href.query}", data),
        ("POST", f"/api/models/{REPO}/commit/main", commit_body(("new.txt", b"new file"))),
        ("POST", "/api/repos/create", json.dumps({"name": "other", "organization": "scl-hf"}).encode()),
    ]
    for method, path, body in attempts:
        status, headers, answer = request(server, method, path, body)
        assert (status, headers["X-Error-Code"]) == (507, "InsufficientStorage"), (path, status, answer[:200])
        assert "error" in json.loads(answer) and headers["X-Error-Message"]
    assert not [p for p in store.tmp.rglob("*")]  # no partial file left behind
    for blob in store.blobs.rglob("*"):
        assert not blob.is_file() or hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert not store.has_blob(oid) and not store.exists(RepoKey("model", "scl-hf/other"))
    assert head_commit(server) == head_before

    monkeypatch.setattr(Store, "_write_file", real_write)  # space again: the same requests succeed
    assert [request(server, m, p, b)[0] for m, p, b in attempts] == [200, 200, 200]
    assert api.list_repo_files(REPO) == [".gitattributes", "new.txt", "notes/a.txt", "weights.bin"]


# ---- the write token kept off the command line ----

def serve_process(root: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "scl_hf.hub.server", "--root", str(root), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    if not line.startswith("scl-hf embedded Hub serving"):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"server did not start: {line!r} {err[-500:]!r}")
    return proc, line.split(" at ")[-1].strip()


@pytest.mark.parametrize("how", ["file", "environment"])
def test_the_token_comes_from_a_file_or_the_environment(tmp_path, how):
    token = "tok-" + os.urandom(8).hex()
    if how == "file":
        (tmp_path / "token").write_text(token + "\n")
        proc, url = serve_process(tmp_path / "hub", "--token_file", str(tmp_path / "token"))
    else:
        proc, url = serve_process(tmp_path / "hub", env={"SCL_HF_HUB_TOKEN": token})
    try:
        assert token not in Path(f"/proc/{proc.pid}/cmdline").read_text()
        with pytest.raises(HfHubHTTPError) as err:
            HfApi(endpoint=url, token=False).create_repo(REPO)
        assert err.value.response.status_code == 401
        assert HfApi(endpoint=url, token=token).create_repo(REPO).repo_id == REPO
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_serve_arguments():
    import argparse

    from scl_hf.hub.server import add_serve_arguments

    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_serve_arguments(parser)
    args = parser.parse_args(["--root", "r", "--token_file", "t"])
    assert (args.root, args.host, args.port, args.token, args.token_file) == ("r", "127.0.0.1", 8080, None, "t")
    with pytest.raises(SystemExit):
        parser.parse_args(["--root", "r", "--token", "a", "--token_file", "t"])
    assert "SCL_HF_HUB_TOKEN" in parser.format_help()


def test_an_empty_token_file_is_an_error(tmp_path):
    (tmp_path / "token").write_text("\n")
    proc = subprocess.run([sys.executable, "-m", "scl_hf.hub.server", "--root", str(tmp_path / "hub"), "--port", "0",
                           "--token_file", str(tmp_path / "token")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "empty" in proc.stderr, proc.stderr[-500:]


# ---- what an earlier adversarial pass established, kept ----

TRAVERSALS = ["..", "%2e%2e", "..%2F..%2Fetc", "%2Fetc%2Fpasswd", "a%5C..%5Cb", "..%5C..", ".git", "a%00b",
              "%2e%2e%2f%2e%2e%2fblobs", "refs%2F..%2F..", "a/../../b", "./x", "%ff%fe", "~", "a//b"]
TEMPLATES = [("GET", "/api/models/{t}"), ("GET", "/api/models/{t}/x"), ("GET", "/api/models/scl-hf/{t}"),
             ("GET", "/api/models/scl-hf/toy/revision/{t}"), ("GET", "/api/models/scl-hf/toy/tree/{t}"),
             ("GET", "/api/models/scl-hf/toy/tree/main/{t}"), ("POST", "/api/models/scl-hf/toy/paths-info/{t}"),
             ("POST", "/api/models/scl-hf/toy/preupload/{t}"), ("GET", "/api/models/scl-hf/toy/commits/{t}"),
             ("POST", "/api/models/scl-hf/toy/commit/{t}"), ("POST", "/api/models/scl-hf/toy/branch/{t}"),
             ("DELETE", "/api/models/scl-hf/toy/tag/{t}"), ("POST", "/api/models/scl-hf/toy/tag/{t}"),
             ("GET", "/scl-hf/toy/resolve/main/{t}"), ("HEAD", "/scl-hf/toy/resolve/{t}/a.txt"),
             ("GET", "/datasets/{t}/toy/resolve/main/a"), ("POST", "/{t}.git/info/lfs/objects/batch"),
             ("PUT", "/scl-hf/toy.git/info/lfs/objects/{t}/1")]


def test_path_traversal_over_every_route_gives_no_5xx_and_no_file_outside_the_root(tmp_path):
    srv = HubServer(tmp_path / "hub").start()
    try:
        seed(srv)
        outside = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "hub"))
        bodies = {"POST": b'{"files": [{"path": "../x", "size": 1, "sample": ""}], "tag": "../x"}', "PUT": b"x"}
        statuses = []
        for method, template in TEMPLATES:
            for t in TRAVERSALS:
                body = bodies.get(method)
                if template.endswith("commit/{t}"):
                    body = ndjson({"key": "header", "value": {"summary": "x"}},
                                  {"key": "file", "value": {"path": unquote(t), "content": "eA=="}})
                statuses.append(request(srv, method, template.format(t=t), body)[0])
        assert len(statuses) == len(TEMPLATES) * len(TRAVERSALS) and max(statuses) < 500
        assert sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "hub")) == outside
        assert all(p.resolve().is_relative_to(srv.store.root) for p in srv.store.root.rglob("*"))
    finally:
        srv.stop()

