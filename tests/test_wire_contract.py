"""What a client app receives, checked the way the published reference tells a client to read it
(../shared/DOCORA_CONTRACT.md §1): by tests/contract_client.js, a Node client, and by
tests/reference_client.py, which the Python receiver applies to every request. Neither decodes
with our code: chunks are concatenated and decoded once, strictly, then the sha is checked."""
import hashlib
import json
import os
import re
import subprocess
import time
import urllib.request
import uuid

import pytest

from docora_admin import db
from docora_admin.services.delivery import snapshot
from tests.reference_client import BODY_KEYS, Reassembler, check_shape, stringify
from tests.test_snapshot import git_cache, link, receiver, repo  # noqa: F401 (fixtures)

MiB = 1 << 20
KiB = 1 << 10
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NODE_CLIENT = os.path.join(os.path.dirname(__file__), "contract_client.js")

# path → (bytes of the first version, bytes of the second), and how many requests each takes
BIG = {
    "bin/one-mib-and-a-byte.bin": (MiB + 1, 3),  # base64: 1,398,104 chars → 3 chunks
    "bin/three-half-mib.bin": (3 * 512 * KiB, 4),  # 2,097,152 chars: exactly 4 chunks
    "bin/three-mib.bin": (3 * MiB, 8),
    "text/large.txt": (1_200_000, 4),  # too large for one body: base64 chunks, 1,600,000 chars
}


def _content(path, size, version):
    if path.endswith(".txt"):
        line = f"version {version}: é ß 中文 😀 text line\n".encode()
        return (line * (size // len(line) + 1))[:size]
    return hashlib.shake_256(f"{path} {version}".encode()).digest(size)


class NodeClient:
    """tests/contract_client.js as a process: base_url, state() (files, events, violations)."""

    def __init__(self, auth_key):
        self.auth_key = auth_key
        self.process = subprocess.Popen(["node", NODE_CLIENT, auth_key], stdout=subprocess.PIPE,
                                        text=True)
        port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.url}/hooks"

    def state(self):
        with urllib.request.urlopen(f"{self.url}/state", timeout=10) as answer:
            return json.load(answer)

    def close(self):
        self.process.terminate()
        self.process.wait(10)
        self.process.stdout.close()


@pytest.fixture
def node_client():
    client = NodeClient("node-client-secret")
    yield client
    client.close()


def _node_link(seed, node_client, repository_id):
    app_id = seed.app(base_url=node_client.base_url, auth_key=node_client.auth_key)
    seed.link(app_id, repository_id, status="pending_snapshot", retry_count=0)
    return app_id


def _again():
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET status = 'pending_snapshot', "
                     "next_attempt_at = now()")


def test_large_files_reach_both_clients_whole_on_create_and_update(seed, receiver, repo,
                                                                     node_client):
    repo.commit({path: _content(path, size, 1) for path, (size, _) in BIG.items()})
    app_id, repository_id = link(seed, receiver, repo)
    node_app = _node_link(seed, node_client, repository_id)
    for version in (1, 2):
        if version == 2:
            repo.commit({path: _content(path, size, 2) for path, (size, _) in BIG.items()})
            receiver.requests.clear()
            _again()
        assert snapshot.run_snapshot(app_id, repository_id) == "synced"
        assert snapshot.run_snapshot(node_app, repository_id) == "synced"
        assert receiver.violations == [] and receiver.too_large == 0
        state = node_client.state()
        assert state["violations"] == []
        action = "create" if version == 1 else "update"
        for path, (size, requests) in BIG.items():
            data = _content(path, size, version)
            assert receiver.files[(app_id, repository_id, path)] == data
            assert state["files"][f"{node_app} {repository_id} {path}"] == {
                "sha": hashlib.sha256(data).hexdigest(), "size": size}
            sent = [p for a, p in receiver.requests if a == action
                    and p["file"]["path"] == path]
            assert [p["file"]["chunk"]["index"] for p in sent] == list(range(requests))
            assert {p["file"]["chunk"]["total"] for p in sent} == {requests}
            ids = {p["file"]["chunk"]["id"] for p in sent}
            assert len(ids) == 1 and str(uuid.UUID(ids.pop())).count("-") == 4
            assert all(len(p["file"]["content"]) == 512 * KiB for p in sent[:-1])
        # The small files of the first commit: text without content_encoding, binary base64.
        if version == 1:
            small = {p["file"]["path"]: p["file"] for a, p in receiver.requests
                     if "chunk" not in p["file"]}
            assert "content_encoding" not in small["docs/guide.md"]
            assert small["img/logo.bin"]["content_encoding"] == "base64"


def test_every_body_has_the_contract_key_order_types_and_timestamps(seed, receiver, repo):
    app_id, repository_id = link(seed, receiver, repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    repo.commit({"docs/guide.md": "Guide v2\n", "docs/new.md": "new\n"}, delete=["README.md"])
    _again()
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert receiver.violations == []
    by_action = {a: p for a, p in receiver.requests}
    for action in ("create", "update", "delete"):
        payload = by_action[action]
        assert list(payload) == BODY_KEYS[action]
        assert list(payload["repository"]) == ["repository_id", "github_url", "owner", "name"]
        assert ISO.match(payload["timestamp"])
        sent_at = time.mktime(time.strptime(payload["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
        assert abs(sent_at - time.mktime(time.gmtime())) < 60
    readme = hashlib.sha256(b"# Docs\n").hexdigest()
    assert by_action["delete"]["file"] == {"path": "README.md", "sha": readme}
    assert "previous_sha" not in by_action["delete"]
    assert list(by_action["create"]["file"]) == ["path", "sha", "size", "content"]
    assert by_action["update"]["previous_sha"] == hashlib.sha256("Guide ✓\n".encode()).hexdigest()


def test_a_name_that_is_not_utf8_is_skipped_alone_and_shown(seed, receiver, repo, node_client,
                                                             logged_in, client):
    (repo.work / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name\n")
    repo.commit({"ok/normal.md": "fine\n"})
    app_id, repository_id = link(seed, receiver, repo)
    node_app = _node_link(seed, node_client, repository_id)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert snapshot.run_snapshot(node_app, repository_id) == "synced"
    assert receiver.actions() == [("create", "README.md"), ("create", "docs/guide.md"),
                                  ("create", "img/logo.bin"), ("create", "ok/normal.md")]
    assert len(node_client.state()["files"]) == 4
    with db.connection() as conn:
        attempt = conn.execute(
            "SELECT outcome, skipped_count, skipped FROM delivery_attempts "
            "WHERE app_id = %s", (app_id,)).fetchone()
    assert attempt == {"outcome": "delivered", "skipped_count": 1, "skipped": [
        {"path": "caf\\xe9.txt", "reason": "file name is not valid UTF-8"}]}
    page = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "Files not sent" in page and "caf\\xe9.txt" in page
    assert "file name is not valid UTF-8" in page
    data = client.get(f"/admin/api/links/{app_id}/{repository_id}").get_json()["data"]
    assert data["attempts"][0]["skipped"] == attempt["skipped"]
    # The next sync delivers nothing new and skips it again, nothing else.
    receiver.requests.clear()
    _again()
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert receiver.requests == []


def test_links_synced_before_keep_their_records(seed, receiver, repo):
    """app_delivered_files written by an earlier version (the sha256 of each file's bytes, by
    path) is what the app has: nothing is sent again."""
    app_id, repository_id = link(seed, receiver, repo)
    with db.connection() as conn:
        for path in ("README.md", "docs/guide.md", "img/logo.bin"):
            conn.execute(
                "INSERT INTO app_delivered_files (app_id, repository_id, file_path, file_sha) "
                "VALUES (%s, %s, %s, %s)", (app_id, repository_id, path,
                                            hashlib.sha256((repo.work / path).read_bytes())
                                            .hexdigest()))
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert receiver.requests == []


def test_delivery_id_names_one_version_of_one_file_for_one_app(seed, receiver, repo):
    repo.commit({"bin/big.bin": _content("bin/big.bin", MiB + 1, 1)})
    app_id, repository_id = link(seed, receiver, repo)
    receiver.fail_on = ("create", "img/logo.bin")
    assert snapshot.run_snapshot(app_id, repository_id) == "pending_snapshot"
    first = {p["file"]["path"]: h["X-Docora-Delivery-Id"]
             for (_, p), h in zip(receiver.requests, receiver.headers)}
    receiver.fail_on = None
    _again()
    # What the app refused is sent again under the same id; a file it took is not sent again.
    with db.connection() as conn:
        conn.execute("DELETE FROM app_delivered_files WHERE file_path = 'README.md'")
    receiver.requests.clear()
    receiver.headers.clear()
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    again = [(p["file"]["path"], h["X-Docora-Delivery-Id"])
             for (_, p), h in zip(receiver.requests, receiver.headers)]
    assert dict(again)["README.md"] == first["README.md"]
    assert all(uuid.UUID(i) for _, i in again)
    big = {i for path, i in again if path == "bin/big.bin"} | {first.get("bin/big.bin")}
    assert len(big - {None}) == 1  # every chunk of a file carries the file's id
    assert len(set(dict(again).values())) == len(dict(again))  # one per file
    other_app = seed.app(base_url=receiver.base_url, auth_key=receiver.auth_key)
    seed.link(other_app, repository_id, status="pending_snapshot", retry_count=0)
    receiver.app_id = None
    receiver.headers.clear()
    receiver.requests.clear()
    assert snapshot.run_snapshot(other_app, repository_id) == "synced"
    theirs = {p["file"]["path"]: h["X-Docora-Delivery-Id"]
              for (_, p), h in zip(receiver.requests, receiver.headers)}
    assert theirs["README.md"] != first["README.md"]


@pytest.mark.parametrize("data", [
    b"\x01\x1f" * 200_000,  # text whose JSON escapes (\u0001) make it six times larger
    "é中😀\u2028".encode() * 70_000,  # multi-byte text, 770,000 bytes
    b"x" * MiB,  # text of exactly 1 MiB: its body would be over
    hashlib.shake_256(b"800k").digest(800_000),  # a binary under 1 MiB whose base64 is over
    "\ufeffsmall text\r\n\x7f\u2029".encode(),  # BOM, CRLF, DEL, U+2029: one body
])
def test_no_body_is_over_one_mib_and_each_file_rebuilds(data):
    from docora_admin.services.delivery.payloads import file_bodies  # builds bodies; not a decoder

    repository = {"repository_id": "repo_" + "0" * 24, "github_url": "https://example.com/o/r",
                  "owner": "o", "name": "r"}
    sha = hashlib.sha256(data).hexdigest()
    bodies = list(file_bodies(repository, "c" * 40, "dir/file", sha, data))
    assert all(len(body) <= MiB for body in bodies)
    rebuilt = Reassembler()
    done = None
    for body in bodies:
        payload = json.loads(body)
        assert stringify(payload).encode() == body  # what JSON.stringify gives back
        check_shape("create", payload)
        done = rebuilt.feed(payload)
    assert done == ("dir/file", data)
