"""The snapshot job against local git repositories and a receiver that checks signatures."""
import base64
import dataclasses
import os
import subprocess
import time

import pytest

from docora_admin import db, runtime
from docora_admin.huey_app import huey
from docora_admin.services.jobs import job_queue, sweeper
from docora_admin.services.delivery import snapshot
from tests.webhook_receiver import Receiver


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                            GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com"))


class Repo:
    """A bare repository (the 'remote') and a work tree that pushes to it."""

    def __init__(self, base):
        self.bare = base / "remote.git"
        self.work = base / "work"
        git("init", "--bare", "--quiet", "-b", "main", str(self.bare), cwd=base)
        git("clone", "--quiet", str(self.bare), str(self.work), cwd=base)
        git("checkout", "--quiet", "-b", "main", cwd=self.work)
        self.url = f"file://{self.bare}"

    def commit(self, files=None, delete=()):
        for path, content in (files or {}).items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content if isinstance(content, bytes) else content.encode())
        for path in delete:
            (self.work / path).unlink()
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "-m", "change", cwd=self.work)
        git("push", "--quiet", "origin", "main", cwd=self.work)


@pytest.fixture(autouse=True)
def git_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCORA_GIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(runtime.settings(), delivery_timeout_s=1))
    huey.flush()
    yield
    huey.flush()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path)
    r.commit({"README.md": "# Docs\n", "docs/guide.md": "Guide ✓\n",
              "img/logo.bin": bytes(range(256)) * 4})
    return r


def link(seed, receiver, repo, status="pending_snapshot", retry_count=0):
    app_id = seed.app(base_url=receiver.base_url, auth_key=receiver.auth_key)
    receiver.app_id = app_id
    repository_id = seed.repo(url=repo.url)
    seed.link(app_id, repository_id, status=status, retry_count=retry_count)
    return app_id, repository_id


def test_first_sync_delivers_every_file_signed(seed, receiver, repo):
    (repo.work / "link-to-readme").symlink_to("README.md")
    repo.commit()
    app_id, repository_id = link(seed, receiver, repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert receiver.bad_signatures == 0
    assert receiver.actions() == [("create", "README.md"), ("create", "docs/guide.md"),
                                  ("create", "img/logo.bin")]
    payloads = {p["file"]["path"]: p for _, p in receiver.requests}
    assert payloads["docs/guide.md"]["file"]["content"] == "Guide ✓\n"
    logo = payloads["img/logo.bin"]["file"]
    assert logo["content_encoding"] == "base64"
    assert base64.b64decode(logo["content"]) == bytes(range(256)) * 4
    assert payloads["README.md"]["repository"]["repository_id"] == repository_id
    assert len(payloads["README.md"]["commit_sha"]) == 40
    status = seed.link_status(app_id, repository_id)
    assert status == {"status": "synced", "retry_count": 0, "last_error": None}
    with db.connection() as conn:
        files = conn.execute("SELECT count(*) AS n FROM snapshot_files").fetchone()["n"]
    assert files == 3


def test_a_change_delivers_only_the_diff(seed, receiver, repo):
    app_id, repository_id = link(seed, receiver, repo)
    snapshot.run_snapshot(app_id, repository_id)
    repo.commit({"docs/guide.md": "Guide v2\n", "docs/new.md": "new\n"}, delete=["README.md"])
    receiver.requests.clear()
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET status = 'pending_snapshot'")
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert [a for a, _ in receiver.requests] == ["delete", "create", "update"]
    assert receiver.actions() == [("create", "docs/new.md"), ("delete", "README.md"),
                                  ("update", "docs/guide.md")]
    update = [p for a, p in receiver.requests if a == "update"][0]
    assert update["previous_sha"] and update["previous_sha"] != update["file"]["sha"]
    # No change: nothing is sent.
    receiver.requests.clear()
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET status = 'pending_snapshot'")
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert receiver.requests == []


@pytest.mark.parametrize("setup,expected", [
    ("status500", "POST /create → HTTP 500"),
    ("timeout", "timeout after 1 s on POST /create"),
    ("refused", "connection refused: 127.0.0.1:"),
    ("missing_repo", "git: repository not found"),
])
def test_failures_record_a_readable_error_and_count(seed, receiver, repo, tmp_path, setup,
                                                    expected):
    app_id, repository_id = link(seed, receiver, repo)
    if setup == "status500":
        receiver.status = 500
    elif setup == "timeout":
        receiver.delay = 2
    elif setup == "refused":
        receiver.close()
    elif setup == "missing_repo":
        with db.connection() as conn:
            conn.execute("UPDATE repositories SET github_url = %s",
                         (f"file://{tmp_path}/nope.git",))
    started = time.monotonic()
    assert snapshot.run_snapshot(app_id, repository_id) == "pending_snapshot"
    assert time.monotonic() - started < 10
    status = seed.link_status(app_id, repository_id)
    assert status["retry_count"] == 1 and status["last_error"].startswith(expected)


def test_the_limit_turns_the_link_failed(seed, receiver, repo):
    receiver.status = 500
    app_id, repository_id = link(seed, receiver, repo, retry_count=4)
    assert snapshot.run_snapshot(app_id, repository_id) == "failed"
    assert seed.link_status(app_id, repository_id) == {
        "status": "failed", "retry_count": 5, "last_error": "POST /create → HTTP 500"}


def test_partial_delivery_resends_only_what_is_missing(seed, receiver, repo):
    app_id, repository_id = link(seed, receiver, repo)
    receiver.fail_on = ("create", "img/logo.bin")
    assert snapshot.run_snapshot(app_id, repository_id) == "pending_snapshot"
    receiver.fail_on = None
    receiver.requests.clear()
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET next_attempt_at = now()")
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert receiver.actions() == [("create", "img/logo.bin")]


def _generation(app_id, repository_id, value):
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET job_generation = %s, next_attempt_at = now() "
                     "WHERE app_id = %s AND repository_id = %s", (value, app_id, repository_id))


def test_duplicate_jobs_of_one_generation_deliver_once_through_huey(seed, receiver, repo):
    app_id, repository_id = link(seed, receiver, repo)
    _generation(app_id, repository_id, 7)
    # A chunk redone after a database crash queues a second job for the same generation.
    job_queue.push_snapshot_jobs([(app_id, repository_id, None, 7)] * 2, 1)
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    assert receiver.actions() == [("create", "README.md"), ("create", "docs/guide.md"),
                                  ("create", "img/logo.bin")]


def test_a_job_of_an_older_generation_does_nothing(seed, receiver, repo):
    app_id, repository_id = link(seed, receiver, repo)
    _generation(app_id, repository_id, 2)
    assert snapshot.run_snapshot(app_id, repository_id, None, 1) is None
    assert seed.link_status(app_id, repository_id)["status"] == "pending_snapshot"
    assert receiver.requests == []
    assert snapshot.run_snapshot(app_id, repository_id, None, 2) == "synced"


def test_deleted_app_ends_the_job_cleanly(seed, receiver, repo):
    app_id, repository_id = link(seed, receiver, repo)
    with db.connection() as conn:
        conn.execute("DELETE FROM apps WHERE app_id = %s", (app_id,))
    assert snapshot.run_snapshot(app_id, repository_id) is None
    assert receiver.requests == []


def test_big_binary_arrives_in_chunks_that_reassemble(seed, receiver, repo):
    blob = os.urandom(1300 * 1024)
    repo.commit({"assets/big.bin": blob})
    app_id, repository_id = link(seed, receiver, repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    chunks = [p["file"] for _, p in receiver.requests if p["file"]["path"] == "assets/big.bin"]
    # 1,331,200 bytes: 1,774,936 base64 characters, cut every 524,288
    assert [c["chunk"]["index"] for c in chunks] == [0, 1, 2, 3]
    assert {c["chunk"]["total"] for c in chunks} == {4} and len({c["chunk"]["id"]
                                                                  for c in chunks}) == 1
    assert receiver.violations == []
    assert receiver.files[(app_id, repository_id, "assets/big.bin")] == blob


def test_token_never_reaches_last_error(seed, receiver, tmp_path):
    app_id = seed.app(base_url=receiver.base_url)
    repository_id = seed.repo(url="https://user:s3cr3t-token@127.0.0.1:1/owner/repo.git")
    seed.link(app_id, repository_id, status="pending_snapshot", retry_count=0)
    snapshot.run_snapshot(app_id, repository_id)
    error = seed.link_status(app_id, repository_id)["last_error"]
    assert error.startswith("git:") and "s3cr3t" not in error


def test_sweeper_queues_pending_links_without_a_job_never_failed_ones(seed, receiver, repo):
    app_id, repository_id = link(seed, receiver, repo)  # pending, never queued
    other = seed.repo(url=repo.url + "-x")
    seed.link(app_id, other, status="failed")
    assert sweeper.requeue_lost_jobs() == 1
    task = huey.dequeue()
    assert task.name == "snapshot" and task.args[:2] == (app_id, repository_id)
    assert sweeper.requeue_lost_jobs() == 0  # just queued: not lost, not queued twice
    assert huey.dequeue() is None
    assert snapshot.run_snapshot(*task.args) == "synced"


def test_one_repository_is_fetched_by_one_job_at_a_time(seed, receiver, repo):
    import threading

    from docora_admin.services.delivery import git_fetch

    app_id, repository_id = link(seed, receiver, repo)
    outcome = []
    with git_fetch.repository_lock(repository_id):  # another job holds the checkout
        worker = threading.Thread(
            target=lambda: outcome.append(snapshot.run_snapshot(app_id, repository_id)))
        worker.start()
        time.sleep(0.5)
        assert outcome == [] and receiver.requests == []
        assert seed.link_status(app_id, repository_id)["status"] == "scanning"
    worker.join(10)
    assert outcome == ["synced"]


def test_a_waiter_may_give_its_worker_back_only_while_the_holder_fetches(repo, monkeypatch):
    from docora_admin.services.delivery import git_fetch

    monkeypatch.setattr(git_fetch, "LOCK_WAIT_S", 0.2)
    asked = []

    def give_back(answer):
        return lambda: asked.append(answer) or answer

    repository_id = "repo_being_fetched"
    marker = git_fetch.cache_root() / f"{git_fetch.checkout_name(repository_id)}.fetching"
    with git_fetch.repository_lock(repository_id):  # another job holds it, only reading
        with pytest.raises(git_fetch.RepositoryBusy) as busy:
            with git_fetch.repository_lock(repository_id, give_back(True)):
                pass
        assert type(busy.value) is git_fetch.RepositoryBusy and asked == []  # it waited
        marker.touch()  # the holder is fetching (git_fetch.fetch marks it so)
        with pytest.raises(git_fetch.RepositoryBusy) as busy:
            with git_fetch.repository_lock(repository_id, give_back(False)):
                pass
        assert type(busy.value) is git_fetch.RepositoryBusy and asked == [False]
        started = time.monotonic()
        with pytest.raises(git_fetch.RepositoryFetching):
            with git_fetch.repository_lock(repository_id, give_back(True)):
                pass
        assert asked == [False, True] and time.monotonic() - started < 0.2  # no wait
    with git_fetch.repository_lock(repository_id, give_back(True)):  # free: taken, not asked
        assert asked == [False, True]
