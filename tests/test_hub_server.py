"""The embedded Hub server driven by the real huggingface_hub client (and raw HTTP for what clients never send).

Round trip, restart persistence, write token, bad requests (4xx and nothing written), racing and
concurrent commits, and a server SIGKILLed in the middle of an upload and of a commit.
"""

import base64
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError, RevisionNotFoundError

from scl_hf.hub.server import HubServer
from scl_hf.hub.store import git_blob_oid

REPO = "scl-hf/toy"
WEIGHTS = bytes(range(256)) * 40  # 10,240 bytes with NUL bytes: goes through LFS


@pytest.fixture
def server(tmp_path):
    srv = HubServer(tmp_path / "hub").start()
    yield srv
    srv.stop()


def api_for(srv: HubServer, token=False) -> HfApi:
    return HfApi(endpoint=srv.url, token=token)


def seed_repo(api: HfApi) -> str:
    """A repo with one regular file and one LFS file; returns the commit."""
    api.create_repo(REPO)
    info = api.create_commit(REPO, [CommitOperationAdd("notes/a.txt", b"hello\n"),
                                    CommitOperationAdd("weights.bin", WEIGHTS)], commit_message="first")
    return info.oid


def request(srv: HubServer, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One raw HTTP request; ``(status, headers, body bytes)``."""
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.headers, data


def ndjson(*items: dict) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def header(summary: str = "x", **extra) -> dict:
    return {"key": "header", "value": {"summary": summary, "description": "", **extra}}


def tree_snapshot(root: Path) -> dict:
    """Every file under the store root (except empty temp folders) with its sha256."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_with_the_client(server, tmp_path):
    api = api_for(server)
    first = seed_repo(api)
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO  # 409 understood as "exists"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409
    api.create_tag(REPO, tag="gen-00", revision=first)
    second = api.create_commit(REPO, [CommitOperationDelete("notes/a.txt"), CommitOperationAdd("b.txt", b"b")],
                               commit_message="second").oid
    api.create_tag(REPO, tag="gen-01", revision=second)

    refs = api.list_repo_refs(REPO)
    assert [(t.name, t.target_commit) for t in refs.tags] == [("gen-00", first), ("gen-01", second)]
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", second)]
    assert [c.title for c in api.list_repo_commits(REPO)] == ["second", "first", "initial commit"]
    assert sorted(api.list_repo_files(REPO, revision="gen-00")) == [".gitattributes", "notes/a.txt", "weights.bin"]
    assert sorted(api.list_repo_files(REPO)) == [".gitattributes", "b.txt", "weights.bin"]

    info = api.model_info(REPO, revision="gen-00", files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    assert info.sha == first
    assert siblings["notes/a.txt"].blob_id == git_blob_oid(b"hello\n") and siblings["notes/a.txt"].lfs is None
    assert siblings["weights.bin"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert siblings["weights.bin"].size == len(WEIGHTS)

    path = hf_hub_download(REPO, "weights.bin", revision="gen-00", endpoint=server.url, cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == WEIGHTS
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "notes/a.txt", revision="gen-01", endpoint=server.url, cache_dir=tmp_path / "c")
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_files(REPO, revision="gen-99")

    # A card whose metadata is not YAML is refused before anything is uploaded (POST /api/validate-yaml).
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=b"---\nkey: [unclosed\n---\nbody\n", path_in_repo="README.md", repo_id=REPO)
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\nbody\n", path_in_repo="README.md", repo_id=REPO)
    assert api.model_info(REPO).card_data.license == "mit"
    second = api.list_repo_commits(REPO)[0].commit_id

    # An unchanged file is not committed again: the client sees the server's oid at preupload.
    same = api.create_commit(REPO, [CommitOperationAdd("weights.bin", WEIGHTS)], commit_message="noop")
    assert same.oid == second and len(api.list_repo_commits(REPO)) == 4


def test_resolve_headers_and_ranges(server):
    first = seed_repo(api_for(server))
    url = f"/{REPO}/resolve/main/weights.bin"
    status, headers, body = request(server, "HEAD", url)
    assert (status, body) == (200, b"")
    assert headers["X-Repo-Commit"] == first
    assert headers["ETag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
    assert headers["Content-Length"] == str(len(WEIGHTS))
    assert request(server, "GET", url, headers={"Range": "bytes=2-5"})[2] == WEIGHTS[2:6]
    status, headers, body = request(server, "GET", url, headers={"Range": "bytes=-3"})
    assert (status, body, headers["Content-Range"]) == (206, WEIGHTS[-3:], f"bytes 10237-10239/{len(WEIGHTS)}")
    assert request(server, "GET", url, headers={"Range": "bytes=10239-"})[2] == WEIGHTS[-1:]
    assert request(server, "GET", url, headers={"Range": "bytes=10240-"})[0] == 416
    status, headers, _ = request(server, "HEAD", f"/{REPO}/resolve/main/notes/a.txt")
    assert headers["ETag"] == f'"{git_blob_oid(b"hello" + bytes([10]))}"'
    status, headers, _ = request(server, "GET", f"/{REPO}/resolve/main/missing.txt")
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")
    status, headers, _ = request(server, "GET", "/scl-hf/nope/resolve/main/a.txt")
    assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")


def test_tree_and_paths_info(server):
    api = api_for(server)
    seed_repo(api)
    api.create_commit(REPO, [CommitOperationAdd("notes/deep/c.txt", b"c")], commit_message="deep")
    top = sorted((e.path, type(e).__name__) for e in api.list_repo_tree(REPO))
    assert top == [(".gitattributes", "RepoFile"), ("notes", "RepoFolder"), ("weights.bin", "RepoFile")]
    deep = sorted(e.path for e in api.list_repo_tree(REPO, "notes", recursive=True))
    assert deep == ["notes/a.txt", "notes/deep", "notes/deep/c.txt"]
    with pytest.raises(RemoteEntryNotFoundError):  # transformers probes optional folders this way
        list(api.list_repo_tree(REPO, "additional_chat_templates"))
    infos = api.get_paths_info(REPO, ["notes", "weights.bin", "missing"])
    assert sorted((i.path, type(i).__name__) for i in infos) == [("notes", "RepoFolder"), ("weights.bin", "RepoFile")]


def test_store_survives_a_restart(tmp_path):
    root = tmp_path / "hub"
    first = HubServer(root).start()
    api = api_for(first)
    oid = seed_repo(api)
    api.create_tag(REPO, tag="gen-00", revision=oid)
    api.create_repo("scl-hf/data", repo_type="dataset")
    commits = [c.commit_id for c in api.list_repo_commits(REPO)]
    first.stop()

    second = HubServer(root).start()
    try:
        api = api_for(second)
        assert [t.target_commit for t in api.list_repo_refs(REPO).tags] == [oid]
        assert [c.commit_id for c in api.list_repo_commits(REPO)] == commits
        assert api.dataset_info("scl-hf/data").id == "scl-hf/data"
        path = hf_hub_download(REPO, "weights.bin", revision="gen-00", endpoint=second.url, cache_dir=tmp_path / "c")
        assert Path(path).read_bytes() == WEIGHTS
        new = api.create_commit(REPO, [CommitOperationAdd("c.txt", b"c")], commit_message="after restart",
                                parent_commit=oid).oid
        assert [c.commit_id for c in api.list_repo_commits(REPO)] == [new, *commits]
    finally:
        second.stop()


def test_write_token_guards_writes_only(tmp_path):
    srv = HubServer(tmp_path / "hub", token="s3cret").start()
    try:
        with pytest.raises(HfHubHTTPError) as err:
            api_for(srv).create_repo(REPO)
        assert err.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError):
            api_for(srv, token="wrong").create_repo(REPO)
        oid = seed_repo(api_for(srv, token="s3cret"))  # the LFS PUT carries a signed URL, no header
        assert api_for(srv).list_repo_refs(REPO).branches[0].target_commit == oid  # reads stay open
        assert request(srv, "POST", f"/api/models/{REPO}/tag/main", json.dumps({"tag": "t"}).encode())[0] == 401
    finally:
        srv.stop()


def test_bad_requests_get_4xx_and_write_nothing(server):
    api = api_for(server)
    head = seed_repo(api)
    api.create_tag(REPO, tag="gen-00", revision=head)
    root = server.store.root
    before = tree_snapshot(root)
    lfs = hashlib.sha256(b"never uploaded").hexdigest()
    commit = f"/api/models/{REPO}/commit/main"
    create = "/api/repos/create"
    cases = [
        # repo ids that would escape the store, or are malformed
        ("POST", create, {"name": "..", "organization": "x"}, 400),
        ("POST", create, {"name": "a", "organization": "../../etc"}, 400),
        ("POST", create, {"name": "a/b", "organization": "x"}, 400),
        ("POST", create, {"name": "ok", "organization": "api"}, 400),
        ("POST", create, {"name": "ok", "organization": "x", "type": "weird"}, 400),
        ("POST", create, {"name": "ok", "organization": "x", "type": "space"}, 400),  # no sdk
        ("POST", create, b"not json", 400),
        ("GET", "/api/models/../../etc/passwd", None, 400),
        ("GET", "/api/models/%2e%2e/x", None, 400),
        ("GET", "/api/models/scl-hf/toy/tree/main/..%2F..%2Fetc", None, 400),
        ("GET", f"/{REPO}/resolve/main/..%2F..%2Frepos", None, 400),
        ("GET", f"/{REPO}/resolve/main/notes/../weights.bin", None, 400),
        ("GET", f"/{REPO}/resolve/main/%2Fetc%2Fpasswd", None, 400),
        ("GET", "/api/nothing-here", None, 404),
        ("GET", f"/api/models/{REPO}/revision/%ff%00", None, 404),  # echoed in a header: escaped, not a 500
        # commits: every path and line checked before anything is written
        ("POST", commit, ndjson(header(), {"key": "file", "value": {"path": "../evil", "content": "eA=="}}), 400),
        ("POST", commit, ndjson(header(), {"key": "file", "value": {"path": "/abs", "content": "eA=="}}), 400),
        ("POST", commit, ndjson(header(), {"key": "file", "value": {"path": "a//b", "content": "eA=="}}), 400),
        ("POST", commit, ndjson(header(), {"key": "file", "value": {"path": ".git/config", "content": "eA=="}}), 400),
        ("POST", commit, ndjson(header(), {"key": "file", "value": {"path": "a\\b", "content": "eA=="}}), 400),
        ("POST", commit, ndjson(header(), {"key": "file", "value": {"path": "ok.txt", "content": "%%%"}}), 400),
        ("POST", commit, ndjson(header(), {"key": "file", "value": {"path": "ok.txt", "content": "eA=="}},
                                {"key": "file", "value": {"path": "../x", "content": "eA=="}}), 400),
        ("POST", commit, ndjson({"key": "file", "value": {"path": "ok.txt", "content": "eA=="}}), 400),
        ("POST", commit, ndjson(header(), {"key": "symlink", "value": {"path": "ok.txt"}}), 400),
        ("POST", commit, ndjson(header(), {"key": "deletedFolder", "value": {"path": 5}}), 400),
        ("POST", commit, ndjson(header(), {"key": "deletedFolder", "value": {"path": "../"}}), 400),
        ("POST", commit, ndjson(header(), {"key": "file", "value": ["not", "an", "object"]}), 400),
        ("POST", commit, b"{not json\n", 400),
        ("POST", commit, ndjson(header(summary="")), 400),
        ("POST", commit, ndjson(header(parentCommit="abc")), 400),
        ("POST", commit, ndjson(header(), {"key": "lfsFile", "value": {"path": "w.bin", "oid": lfs}}), 400),
        ("POST", commit, ndjson(header(), {"key": "lfsFile", "value": {"path": "w.bin", "oid": "../../x"}}), 400),
        ("POST", commit, ndjson(header(), {"key": "file", "value": {"path": "weights.bin/x", "content": ""}}), 400),
        ("POST", commit, ndjson(header(), {"key": "deletedFile", "value": {"path": "missing.txt"}}), 404),
        ("POST", commit, ndjson(header(parentCommit="0" * 40)), 412),
        ("POST", commit + "?create_pr=1", ndjson(header()), 400),
        ("POST", f"/api/models/{REPO}/commit/gen-00", ndjson(header()), 400),  # a tag is not a branch
        ("POST", f"/api/models/{REPO}/commit/nope", ndjson(header()), 404),
        ("POST", "/api/models/scl-hf/none/commit/main", ndjson(header()), 404),
        # preupload, refs
        ("POST", f"/api/models/{REPO}/preupload/main", {"files": [{"path": "../x", "size": 1, "sample": ""}]}, 400),
        ("POST", f"/api/models/{REPO}/tag/main", {"tag": "gen-00"}, 409),
        ("POST", f"/api/models/{REPO}/tag/main", {"tag": "../x"}, 400),
        ("POST", f"/api/models/{REPO}/tag/nope", {"tag": "v1"}, 404),
        ("POST", f"/api/models/{REPO}/branch/..", {}, 400),
        ("POST", f"/api/models/{REPO}/branch/main", {}, 409),
        ("DELETE", f"/api/models/{REPO}/branch/main", None, 400),
        # LFS: bad objects, unsigned or mismatching uploads
        ("POST", f"/{REPO}.git/info/lfs/objects/batch", {"operation": "upload", "objects": [{"oid": "zz", "size": 1}]},
         400),
        ("POST", f"/{REPO}.git/info/lfs/objects/batch", {"operation": "download", "objects": []}, 400),
        ("PUT", f"/{REPO}.git/info/lfs/objects/{lfs}/14?sig=forged", b"never uploaded", 403),
    ]
    for method, path, body, expected in cases:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        status, headers, payload = request(server, method, path, data)
        assert status == expected, (method, path, body, status, payload)
        assert "error" in json.loads(payload), (method, path)

    # A correctly signed upload whose bytes do not match its oid is refused and leaves nothing.
    batch = {"operation": "upload", "objects": [{"oid": lfs, "size": 14}]}
    status, _, payload = request(server, "POST", f"/{REPO}.git/info/lfs/objects/batch", json.dumps(batch).encode())
    href = urlsplit(json.loads(payload)["objects"][0]["actions"]["upload"]["href"])
    status, _, payload = request(server, "PUT", f"{href.path}?{href.query}", b"something else")
    assert status == 400 and b"does not match" in payload
    assert tree_snapshot(root) == before
    assert api.list_repo_refs(REPO).branches[0].target_commit == head


def test_chunked_request_bodies(server):
    api = api_for(server)
    seed_repo(api)
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    body = ndjson(header("chunked"), {"key": "file", "value": {"path": "c.txt", "content": "Y2h1bmtlZA=="}})
    conn.request("POST", f"/api/models/{REPO}/commit/main", body=iter([body[:7], body[7:]]),
                 encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    assert json.loads(resp.read())["commitOid"] == api.list_repo_commits(REPO)[0].commit_id
    conn.close()
    status, _, data = request(server, "GET", f"/{REPO}/resolve/main/c.txt")
    assert (status, data) == (200, b"chunked")


def race(api: HfApi, names: list[str], parent: str) -> dict:
    """Commit one file per name from as many threads at once, all on ``parent``: name -> oid or HTTP status."""
    barrier, outcome = threading.Barrier(len(names)), {}

    def commit(name: str) -> None:
        barrier.wait()
        try:
            outcome[name] = api.create_commit(REPO, [CommitOperationAdd(f"{name}.txt", name.encode())],
                                              commit_message=name, parent_commit=parent).oid
        except HfHubHTTPError as err:
            outcome[name] = err.response.status_code

    threads = [threading.Thread(target=commit, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome


def test_racing_commits_one_wins_the_other_gets_412(server):
    api = api_for(server)
    head = seed_repo(api)
    for round_ in range(3):
        names = [f"r{round_}a", f"r{round_}b"]
        outcome = race(api, names, head)
        winners = [n for n in names if isinstance(outcome[n], str)]
        assert len(winners) == 1 and outcome[names[names.index(winners[0]) - 1]] == 412, outcome
        files = api.list_repo_files(REPO)
        assert f"{winners[0]}.txt" in files and sum(n + ".txt" in files for n in names) == 1
        head = outcome[winners[0]]
        assert api.list_repo_refs(REPO).branches[0].target_commit == head


def test_concurrent_commits_without_a_parent_all_land(server):
    api = api_for(server)
    seed_repo(api)
    barrier = threading.Barrier(8)

    def commit(i: int) -> None:
        barrier.wait()
        api.create_commit(REPO, [CommitOperationAdd(f"c/{i}.txt", str(i).encode())], commit_message=f"c{i}")

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(f for f in api.list_repo_files(REPO) if f.startswith("c/")) == sorted(f"c/{i}.txt" for i in range(8))
    assert len(api.list_repo_commits(REPO)) == 2 + 8  # initial, first, and one per writer: nothing lost


def start_server_process(root: Path) -> tuple[subprocess.Popen, str]:
    """``scl-hf hub serve`` on a free port in a subprocess; returns it and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "scl_hf.cli", "hub", "serve", "--root", str(root), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("scl-hf embedded Hub serving"), line
    return proc, line.split(" at ")[-1].strip()


@pytest.mark.slow
def test_sigkill_during_upload_and_commit_leaves_the_repo_consistent(tmp_path):
    root = tmp_path / "hub"
    proc, url = start_server_process(root)
    try:
        api = HfApi(endpoint=url, token=False)
        head = seed_repo(api)
        files = sorted(api.list_repo_files(REPO))
        host, port = urlsplit(url).hostname, urlsplit(url).port
        big = os.urandom(3 << 20)
        oid = hashlib.sha256(big).hexdigest()
        batch = {"operation": "upload", "objects": [{"oid": oid, "size": len(big)}]}
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("POST", f"/{REPO}.git/info/lfs/objects/batch", body=json.dumps(batch))
        href = urlsplit(json.loads(conn.getresponse().read())["objects"][0]["actions"]["upload"]["href"])
        # Half of the upload, then the connection idles: the server is streaming it into a temp file.
        put = http.client.HTTPConnection(host, port, timeout=10)
        put.putrequest("PUT", f"{href.path}?{href.query}")
        put.putheader("Content-Length", str(len(big)))
        put.endheaders()
        put.send(big[: len(big) // 2])
        # A commit whose body is half sent.
        line = {"key": "file", "value": {"path": "late.txt", "content": base64.b64encode(b"late" * 1000).decode()}}
        body = ndjson(header("never", parentCommit=head), line)
        post = http.client.HTTPConnection(host, port, timeout=10)
        post.putrequest("POST", f"/api/models/{REPO}/commit/main")
        post.putheader("Content-Length", str(len(body)))
        post.endheaders()
        post.send(body[: len(body) // 2])
        deadline = time.monotonic() + 20
        partial = []
        while not partial and time.monotonic() < deadline:
            partial = [p for p in (root / "tmp").rglob("*") if p.is_file() and p.stat().st_size > 0]
            time.sleep(0.05)
        assert partial, "the server never started writing the upload"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    proc, url = start_server_process(root)
    try:
        api = HfApi(endpoint=url, token=False)
        assert api.list_repo_refs(REPO).branches[0].target_commit == head
        assert sorted(api.list_repo_files(REPO)) == files
        assert not (root / "blobs" / oid[:2] / oid).exists()
        assert not any(p.is_file() for p in (root / "tmp").rglob("*"))  # the dead server's partial files are gone
        new = api.create_commit(REPO, [CommitOperationAdd("big.bin", big)], commit_message="retry", parent_commit=head)
        path = hf_hub_download(REPO, "big.bin", revision=new.oid, endpoint=url, cache_dir=tmp_path / "c")
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == oid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
