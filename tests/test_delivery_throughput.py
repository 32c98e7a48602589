"""What an app receives does not depend on how cheaply the snapshot job gets it (issue 12): a
shared fetch and scan, acknowledgements written in batches, kept-alive connections.

The expected requests are worked out here from the work tree itself and the contract
(../shared/DOCORA_CONTRACT.md §1: sha256, UTF-8 or base64, a binary over 1 MiB as the base64
string of the whole file cut every 524,288 characters), not with the job's own code."""
import base64
import calendar
import dataclasses
import hashlib
import hmac
import json
import os
import threading
import time
from collections import Counter

import pytest
import redis

from docora_admin import db, runtime
from docora_admin.huey_app import huey
from docora_admin.services.delivery import acknowledgements, snapshot, snapshot_delivery
from docora_admin.services.jobs import job_queue
from tests.conftest import TEST_REDIS_URL
from tests.processes import start_consumer, wait_for
from tests.test_snapshot import Repo, git_cache, link, receiver  # noqa: F401 (fixtures)
from tests.webhook_receiver import Receiver

CHUNK_CHARS = 512 * 1024
STREAM_MIN_FILES = snapshot_delivery.STREAM_MIN_FILES  # as a consumer process has it
BIG = os.urandom(1300 * 1024)


@pytest.fixture(autouse=True)
def streams_for_any_link(monkeypatch):
    """Every link here goes on several streams, however few its files, so that the order
    each file's requests keep is the parallel path's (a link needs STREAM_MIN_FILES files to
    send for that in production)."""
    monkeypatch.setattr(snapshot_delivery, "STREAM_MIN_FILES", 1)


@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path)
    r.commit({"README.md": "# Docs\n", "docs/guide.md": "Guide ✓\n",
              "img/logo.bin": bytes(range(256)) * 4, "assets/big.bin": BIG})
    (r.work / "link-to-readme").symlink_to("README.md")
    r.commit()
    return r


@pytest.fixture
def git_trace(tmp_path, monkeypatch):
    """Counts of the git commands the job runs (git's own GIT_TRACE2 log)."""
    path = tmp_path / "git-trace"
    monkeypatch.setenv("GIT_TRACE2", str(path))

    def counts():
        seen = Counter()
        for line in path.read_text().splitlines() if path.exists() else []:
            parts = line.split()
            if "cmd_name" in parts and "/" not in parts[parts.index("cmd_name") + 2]:
                seen[parts[parts.index("cmd_name") + 1]] += 1
        return seen
    return counts


def share_window(seconds):
    runtime._settings = dataclasses.replace(runtime.settings(), git_share_seconds=seconds)


def head(repo):
    import subprocess
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo.work, capture_output=True,
                          text=True, check=True).stdout.strip()


def expected_file_payloads(repo, path, commit, repository, previous_sha=None):
    """The contract's bodies of one file, in its key order (the timestamp left out); the
    files here are small text or base64 under 700 KB, or a binary over 1 MiB."""
    data = (repo.work / path).read_bytes()
    info = {"path": path, "sha": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def payload(file):
        body = {"repository": repository, "file": file}
        if previous_sha:
            body["previous_sha"] = previous_sha
        body["commit_sha"] = commit
        return body

    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL")
        return [payload({**info, "content": data.decode()})]
    except UnicodeDecodeError:
        pass
    encoded = base64.b64encode(data).decode()
    if len(data) <= 1 << 20:
        return [payload({**info, "content": encoded, "content_encoding": "base64"})]
    pieces = [encoded[i:i + CHUNK_CHARS] for i in range(0, len(encoded), CHUNK_CHARS)]
    return [payload({**info, "content": piece, "content_encoding": "base64",
                     "chunk": {"index": i, "total": len(pieces)}})
            for i, piece in enumerate(pieces)]


def per_file(requests):
    """{path: [(action, payload), …]} in the order each file's requests arrived; a link's files
    may go on several streams at once, each file's requests in order on one."""
    grouped = {}
    for action, payload in requests:
        grouped.setdefault(payload["file"]["path"], []).append((action, payload))
    return grouped


def phases(requests):
    """The actions in the order they began: deletes, then creates, then updates, each phase
    over before the next starts."""
    order = []
    for action, _ in requests:
        if not order or order[-1] != action:
            order.append(action)
    return order


def comparable(requests):
    """(action, payload) with what differs per run taken out: the timestamp and the chunk id
    (checked separately: one id per file)."""
    out = []
    for action, payload in requests:
        payload = json.loads(json.dumps(payload))
        sent_at = time.strptime(payload.pop("timestamp"), "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs(calendar.timegm(sent_at) - time.time()) < 60
        payload["file"].get("chunk", {}).pop("id", None)
        out.append((action, payload))
    return out


def apps_on_one_repository(seed, receivers, repo):
    """One link per receiver's app, all to one repository, pending; [(app_id, repository_id)]."""
    repository_id = seed.repo(url=repo.url)
    return [seed.link(seed.app(base_url=r.base_url, auth_key=r.auth_key), repository_id,
                      status="pending_snapshot", retry_count=0) for r in receivers]


def repository_of(repository_id):
    with db.connection() as conn:
        row = conn.execute("SELECT repository_id, github_url, owner, name FROM repositories "
                           "WHERE repository_id = %s", (repository_id,)).fetchone()
    return dict(row)


def requeue(app_id, repository_id):
    """The link is due again now, as a retry or a re-scan leaves it."""
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET status = 'pending_snapshot', "
                     "next_attempt_at = now() WHERE app_id = %s AND repository_id = %s",
                     (app_id, repository_id))


def check_signed(receiver, app_id):
    assert receiver.bad_signatures == 0
    for headers, (_, payload) in zip(receiver.headers, receiver.requests):
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Docora-App-Id"] == app_id
        assert abs(int(headers["X-Docora-Timestamp"]) - time.time()) < 60
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        mac = hmac.new(receiver.auth_key.encode(),
                       headers["X-Docora-Timestamp"].encode() + b"." + body, hashlib.sha256)
        assert headers["X-Docora-Signature"] == f"sha256={mac.hexdigest()}"


def test_the_app_receives_the_same_requests_in_the_same_order(seed, receiver, repo):
    app_id, repository_id = link(seed, receiver, repo)
    repository, first = repository_of(repository_id), head(repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    expected = [("create", p) for path in ("README.md", "assets/big.bin", "docs/guide.md",
                                           "img/logo.bin")
                for p in expected_file_payloads(repo, path, first, repository)]
    assert per_file(comparable(receiver.requests)) == per_file(expected)
    assert len(receiver.requests) == len(expected)
    chunk_ids = {p["file"]["chunk"]["id"] for _, p in receiver.requests if "chunk" in p["file"]}
    assert len(chunk_ids) == 1
    assert receiver.violations == []
    assert receiver.files[(app_id, repository_id, "assets/big.bin")] == BIG
    check_signed(receiver, app_id)

    old = {p["file"]["path"]: p["file"]["sha"] for _, p in receiver.requests}
    repo.commit({"docs/guide.md": "Guide v2\n", "docs/a-new.md": "new\n"}, delete=["README.md"])
    receiver.requests.clear()
    receiver.headers.clear()
    requeue(app_id, repository_id)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    second = head(repo)
    assert comparable(receiver.requests) == [
        ("delete", {"repository": repository, "commit_sha": second,
                    "file": {"path": "README.md", "sha": old["README.md"]}}),
        *[("create", p) for p in expected_file_payloads(repo, "docs/a-new.md", second,
                                                        repository)],
        *[("update", p) for p in expected_file_payloads(repo, "docs/guide.md", second,
                                                        repository, old["docs/guide.md"])]]
    check_signed(receiver, app_id)


def test_deletes_end_before_creates_and_creates_before_updates(seed, receiver, tmp_path):
    repo = Repo(tmp_path)
    repo.commit({f"{kind}{n}.md": f"{kind} {n}\n" for kind in ("gone", "kept") for n in range(6)})
    app_id, repository_id = link(seed, receiver, repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    repo.commit({**{f"new{n}.md": "new\n" for n in range(6)},
                 **{f"kept{n}.md": "changed\n" for n in range(6)}},
                delete=[f"gone{n}.md" for n in range(6)])
    receiver.requests.clear()
    receiver.headers.clear()
    requeue(app_id, repository_id)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert phases(receiver.requests) == ["delete", "create", "update"]
    assert Counter(a for a, _ in receiver.requests) == {"delete": 6, "create": 6, "update": 6}
    check_signed(receiver, app_id)


def test_two_apps_on_one_repository_each_get_everything_from_one_fetch(seed, repo, git_trace):
    receivers = [Receiver(auth_key=f"key-{n}") for n in range(2)]
    try:
        links = apps_on_one_repository(seed, receivers, repo)
        outcomes = []
        threads = [threading.Thread(target=lambda a=a, r=r: outcomes.append(
            snapshot.run_snapshot(a, r))) for a, r in links]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes == ["synced", "synced"]
        for r, (app_id, _) in zip(receivers, links):
            assert r.actions() == [("create", "README.md"), ("create", "assets/big.bin"),
                                   ("create", "docs/guide.md"), ("create", "img/logo.bin")]
            check_signed(r, app_id)
        commands = git_trace()
        assert commands["clone"] + commands["fetch"] == 1, commands
        with db.connection() as conn:
            written = conn.execute("SELECT commit_sha, scanned_at FROM repository_snapshots"
                                   ).fetchall()
        assert [w["commit_sha"] for w in written] == [head(repo)]
        # The same commit again: the snapshot is not written a second time.
        requeue(*links[0])
        assert snapshot.run_snapshot(*links[0]) == "synced"
        with db.connection() as conn:
            again = conn.execute("SELECT commit_sha, scanned_at FROM repository_snapshots"
                                 ).fetchall()
        assert again == written
    finally:
        for r in receivers:
            r.close()


def test_a_link_whose_repository_moved_on_gets_the_new_commit(seed, repo, git_trace):
    receivers = {name: Receiver(auth_key=f"key-{name}") for name in "abc"}
    try:
        share_window(30)
        (a, repository_id), (b, _), (c, _) = apps_on_one_repository(
            seed, receivers.values(), repo)
        with db.connection() as conn:  # b and c were queued before anything was fetched
            conn.execute("UPDATE app_repositories SET next_attempt_at = now() - interval '1 s'")
        assert snapshot.run_snapshot(a, repository_id) == "synced"  # the shared fetch
        first = head(repo)
        repo.commit({"docs/guide.md": "Guide v2\n"})
        second = head(repo)

        # b's turn comes within the window: the shared observation, made after b was queued,
        # serves it (as if b had run a moment earlier).
        assert snapshot.run_snapshot(b, repository_id) == "synced"
        assert {p["commit_sha"] for _, p in receivers["b"].requests} == {first}
        # c's turn comes after the window: the remote is asked again, the new commit fetched.
        share_window(1)
        time.sleep(1.1)
        assert snapshot.run_snapshot(c, repository_id) == "synced"
        assert {p["commit_sha"] for _, p in receivers["c"].requests} == {second}
        guide = [p for _, p in receivers["c"].requests if p["file"]["path"] == "docs/guide.md"]
        assert guide[0]["file"]["content"] == "Guide v2\n"
        # a is queued again after the push: within the window still, it gets the new commit,
        # since only what was seen after it was queued may serve it.
        share_window(30)
        receivers["a"].requests.clear()
        requeue(a, repository_id)
        assert snapshot.run_snapshot(a, repository_id) == "synced"
        assert [(act, p["file"]["path"], p["commit_sha"]) for act, p in receivers["a"].requests
                ] == [("update", "docs/guide.md", second)]
        commands = git_trace()
        assert (commands["clone"], commands["fetch"]) == (1, 1), commands
    finally:
        for r in receivers.values():
            r.close()


def test_a_checkout_changed_behind_gits_back_is_fetched_again(seed, repo):
    from docora_admin.services.delivery import git_fetch

    receivers = [Receiver(auth_key=f"key-{n}") for n in range(2)]
    try:
        (a, repository_id), (b, _) = apps_on_one_repository(seed, receivers, repo)
        assert snapshot.run_snapshot(a, repository_id) == "synced"
        (git_fetch.checkout_path(repository_id) / "docs/guide.md").write_text("tampered\n")
        assert snapshot.run_snapshot(b, repository_id) == "synced"
        guide = [p["file"] for _, p in receivers[1].requests
                 if p["file"]["path"] == "docs/guide.md"]
        assert guide[0]["content"] == "Guide ✓\n"
        assert guide[0]["sha"] == hashlib.sha256("Guide ✓\n".encode()).hexdigest()
    finally:
        for r in receivers:
            r.close()


def test_connections_are_kept_and_reused(seed, receiver, repo, tmp_path):
    app_id, repository_id = link(seed, receiver, repo)
    (tmp_path / "other").mkdir()
    other = Repo(tmp_path / "other")
    other.commit({"a.md": "a\n", "b.md": "b\n"})
    other_id = seed.repo(url=other.url)
    seed.link(app_id, other_id, status="pending_snapshot", retry_count=0)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    opened = receiver.connections
    assert 1 <= opened <= runtime.settings().delivery_streams_per_link
    assert snapshot.run_snapshot(app_id, other_id) == "synced"
    assert len(receiver.requests) == 7 + 2  # 4 files, the big one in 4 chunks; then 2
    assert receiver.connections == opened  # the second job found them open


def test_a_links_streams_never_outnumber_its_apps_concurrency(seed, receiver, tmp_path):
    repo = Repo(tmp_path)
    repo.commit({f"f{n:02d}.md": f"file {n}\n" for n in range(24)})
    app_id, repository_id = link(seed, receiver, repo)
    runtime._settings = dataclasses.replace(runtime.settings(), delivery_streams_per_link=8,
                                            app_max_concurrency=2, app_rate_per_second=0)
    receiver.delay = 0.02  # requests overlap whenever two streams are sending
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert len(receiver.deliveries) == 24
    assert receiver.max_in_flight == 2  # two streams, not eight (six waiting for a slot)


def test_a_worker_killed_mid_batch_resends_only_what_was_not_acknowledged(seed, receiver,
                                                                         tmp_path):
    # As many files as it takes for several streams in the consumer (STREAM_MIN_FILES), fewer
    # than one batch (acknowledgements.BATCH_FILES).
    files = {f"f{n:03d}.md": f"file {n}\n" for n in range(STREAM_MIN_FILES)}
    assert len(files) < acknowledgements.BATCH_FILES
    repo = Repo(tmp_path)
    repo.commit(files)
    app_id, repository_id = link(seed, receiver, repo)
    receiver.hold_on = ("create", "f050.md")  # the app never answers this one
    env = {"DOCORA_GIT_CACHE": str(tmp_path / "git-cache"), "WATCHDOG_INTERVAL_SECONDS": "1",
           "JOB_LEASE_SECONDS": "5", "LOST_JOB_GRACE_SECONDS": "1"}
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET next_attempt_at = now()")
    job_queue.push_snapshot_jobs([(app_id, repository_id, None, 0)], time.time() * 1e6)
    journal_key = acknowledgements.journal_key(app_id, repository_id)
    consumer = start_consumer(tmp_path, workers=2, **env)
    try:
        assert receiver.holding.wait(30), consumer.log()
        # The other streams go on until every other file is acknowledged (and noted), then the
        # worker is killed while f050.md waits for its answer.
        wait_for(lambda: redis.Redis.from_url(TEST_REDIS_URL).hlen(journal_key) == len(files) - 1,
                 15, message="every other file acknowledged")
        consumer.kill()
    finally:
        consumer.stop()
    # Acknowledged before the kill: in the journal, not yet in PostgreSQL (one batch).
    journal = redis.Redis.from_url(TEST_REDIS_URL).hgetall(journal_key)
    assert sorted(path.decode() for path in journal) == sorted(set(files) - {"f050.md"})
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM app_delivered_files").fetchone()["n"] == 0

    receiver.hold_on = None
    receiver.release.set()
    consumer = start_consumer(tmp_path, workers=2, name="consumer2", **env)
    try:
        wait_for(lambda: seed.link_status(app_id, repository_id)["status"] == "synced", 30,
                 message="the link delivered by the next job")
    finally:
        consumer.stop()
    assert sorted(d[3] for d in receiver.deliveries) == sorted(files)  # each file once
    with db.connection() as conn:
        delivered = conn.execute("SELECT file_path FROM app_delivered_files").fetchall()
    assert sorted(r["file_path"] for r in delivered) == sorted(files)
    assert not redis.Redis.from_url(TEST_REDIS_URL).exists(journal_key)
    huey.flush()
