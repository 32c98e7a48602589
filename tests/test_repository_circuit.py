"""The per-repository git circuit and sync_failed (DOCORA_CONTRACT.md §1), against real
PostgreSQL, Redis, Huey (dequeued and executed in-process), git and client apps that check
every request as the published reference does (tests/webhook_receiver.Receiver)."""
import dataclasses
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from docora_admin import db, runtime
from docora_admin.config import ConfigError, load_settings
from docora_admin.huey_app import huey
from docora_admin.repositories import sync_failed_notices as notices_repo
from docora_admin.services.delivery import git_fetch, snapshot
from docora_admin.services.console import metrics_state
from docora_admin.services.control import repository_circuit, sync_failed
from docora_admin.services.jobs import watchdog
from tests.accounts_helpers import client_as
from tests.conftest import TEST_DATABASE_URL, TEST_ENV
from tests.test_outcomes import run_queue
from tests.test_snapshot import Repo
from tests.test_wire_contract import NodeClient
from tests.webhook_receiver import Receiver

HX = {"HX-Request": "true"}
THRESHOLD = 5
COOLDOWN_MIN = 30
BODY_KEYS = ["event", "repository", "error", "circuit_breaker", "retry_count", "timestamp"]


@pytest.fixture(autouse=True)
def circuit_settings(tmp_path, monkeypatch, empty_queue):
    monkeypatch.setenv("DOCORA_GIT_CACHE", str(tmp_path / "cache"))
    settings = dataclasses.replace(
        runtime.settings(), delivery_timeout_s=2, max_retry_attempts=10,
        retry_backoff_seconds=60, repository_failure_threshold=THRESHOLD,
        repository_cooldown_minutes=COOLDOWN_MIN, app_rate_per_second=0,
        app_max_concurrency=0, git_share_seconds=0)
    monkeypatch.setattr(runtime, "_settings", settings)
    return settings


@pytest.fixture
def git_calls(monkeypatch):
    """Counts every git process the snapshot jobs start (git still runs)."""
    calls = []
    real = git_fetch._git

    def counting(args, cwd=None):
        calls.append(args[0])
        return real(args, cwd)

    monkeypatch.setattr(git_fetch, "_git", counting)
    return calls


@pytest.fixture
def apps(seed, tmp_path):
    """Two apps, each with its own receiver, linked to one repository whose file:// URL does not
    exist yet (Repo(tmp_path) creates it: tmp_path / "remote.git")."""
    receivers = [Receiver(), Receiver()]
    url = f"file://{tmp_path}/remote.git"
    repository_id = seed.repo(url=url, owner="acme", name="docs")
    app_ids = []
    for n, receiver in enumerate(receivers):
        app_id = seed.app(f"Circuit App {n}", base_url=receiver.base_url,
                          auth_key=receiver.auth_key)
        seed.link(app_id, repository_id, status="pending_snapshot", retry_count=0)
        receiver.app_id = app_id
        app_ids.append(app_id)
    yield {"app_ids": app_ids, "receivers": receivers, "repository_id": repository_id,
           "url": url}
    for receiver in receivers:
        receiver.close()


def _jobs(apps, count):
    """`count` snapshot jobs, the two links in turn; their outcomes."""
    return [snapshot.run_snapshot(apps["app_ids"][n % 2], apps["repository_id"])
            for n in range(count)]


def _repository(repository_id):
    with db.connection() as conn:
        return conn.execute("""
            SELECT consecutive_failures, circuit_open_until, circuit_opened_at, circuit_episode,
                   last_git_error, now() AS now
            FROM repositories WHERE repository_id = %s""", (repository_id,)).fetchone()


def _links(repository_id):
    with db.connection() as conn:
        return conn.execute("""
            SELECT app_id, status, retry_count, next_attempt_at, job_generation
            FROM app_repositories WHERE repository_id = %s ORDER BY app_id""",
                            (repository_id,)).fetchall()


def _attempts(repository_id, outcome=None):
    with db.connection() as conn:
        return conn.execute("""
            SELECT app_id, outcome, cause, error, link_status, operation_id
            FROM delivery_attempts WHERE repository_id = %s
              AND (%s::text IS NULL OR outcome = %s) ORDER BY id""",
                            (repository_id, outcome, outcome)).fetchall()


def _sync_failed(receiver):
    return [(payload, headers) for (action, payload), headers
            in zip(receiver.requests, receiver.headers) if action == "sync_failed"]


def _expire_cooldown(repository_id):
    with db.connection() as conn:
        conn.execute("UPDATE repositories SET circuit_open_until = now() - interval '1 second' "
                     "WHERE repository_id = %s", (repository_id,))


def _iso(value):
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


# --- opening, sync_failed once per app, no git work while open ------------------------------

def test_five_git_failures_open_the_circuit_and_each_app_gets_one_sync_failed(
        apps, git_calls, client, logged_in):
    repository_id, receivers = apps["repository_id"], apps["receivers"]
    assert _jobs(apps, THRESHOLD - 1) == ["pending_snapshot"] * (THRESHOLD - 1)
    assert _repository(repository_id)["consecutive_failures"] == THRESHOLD - 1
    assert _repository(repository_id)["circuit_opened_at"] is None
    assert _jobs(apps, 1) == ["pending_snapshot"]  # the fifth in a row opens it
    state = _repository(repository_id)
    assert state["consecutive_failures"] == THRESHOLD and state["circuit_episode"] == 1
    cooldown = state["circuit_open_until"] - state["now"]
    assert timedelta(minutes=COOLDOWN_MIN) - timedelta(seconds=5) < cooldown \
        <= timedelta(minutes=COOLDOWN_MIN)

    assert [name.rsplit(".", 1)[-1] for name in run_queue()] == ["send_sync_failed_notices"]
    retry_counts = {row["app_id"]: row["retry_count"] for row in _links(repository_id)}
    for receiver in receivers:
        assert receiver.bad_signatures == 0 and receiver.violations == []
        [(body, headers)] = _sync_failed(receiver)
        assert headers["X-Docora-App-Id"] == receiver.app_id
        assert list(body) == BODY_KEYS
        assert body["event"] == "sync_failed"
        assert body["repository"] == {"repository_id": repository_id,
                                      "github_url": apps["url"], "owner": "acme",
                                      "name": "docs"}
        assert list(body["repository"]) == ["repository_id", "github_url", "owner", "name"]
        assert body["error"] == {"type": "git_failure", "message": "git: repository not found"}
        breaker = body["circuit_breaker"]
        assert list(breaker) == ["status", "consecutive_failures", "threshold",
                                 "cooldown_until"]
        assert (breaker["status"], breaker["consecutive_failures"], breaker["threshold"]) == \
            ("open", THRESHOLD, THRESHOLD)
        assert abs(_iso(breaker["cooldown_until"]) - state["circuit_open_until"]) < \
            timedelta(milliseconds=1)
        assert body["retry_count"] == retry_counts[receiver.app_id]
        assert type(body["retry_count"]) is int
        assert abs(_iso(body["timestamp"]) - datetime.now(timezone.utc)) < timedelta(seconds=10)
    assert sorted(retry_counts.values()) == [2, 3]

    # While open: more jobs for those links do no git work, count nothing, send nothing.
    git_before = len(git_calls)
    attempts_before = len(_attempts(repository_id))
    assert _jobs(apps, 4) == ["pending_snapshot"] * 4
    assert len(git_calls) == git_before
    assert _repository(repository_id)["consecutive_failures"] == THRESHOLD
    assert len(_attempts(repository_id)) == attempts_before
    links = _links(repository_id)
    assert [(r["status"], r["retry_count"]) for r in links] == \
        [("pending_snapshot", retry_counts[r["app_id"]]) for r in links]
    # Held until the cooldown ends: due then, with their job scheduled then.
    assert all(r["next_attempt_at"] == state["circuit_open_until"] for r in links)
    # (Older scheduled jobs, the backoffs of the failed attempts, are now stale: no-ops.)
    scheduled = {(task.args[0], task.args[3]): task for task in huey.scheduled()}
    for link in links:
        task = scheduled[(link["app_id"], link["job_generation"])]
        assert abs(task.eta.replace(tzinfo=timezone.utc) - state["circuit_open_until"]) < \
            timedelta(seconds=1)
    sync_failed.send_due()
    assert sync_failed.tick() is False
    run_queue()
    assert [len(_sync_failed(r)) for r in receivers] == [1, 1]

    # Logged on each link, without touching any bulk operation's outcome; audited; counted.
    logged = _attempts(repository_id, "sync_failed")
    assert sorted(a["app_id"] for a in logged) == sorted(apps["app_ids"])
    assert all(a["cause"] == "repo_circuit" and a["operation_id"] is None
               and a["error"] == "git: repository not found" for a in logged)
    with db.connection() as conn:
        [event] = conn.execute("SELECT actor, target, details FROM audit_events "
                               "WHERE action = 'repository.circuit_open'").fetchall()
    assert (event["actor"], event["target"]) == ("system", repository_id)
    assert event["details"]["apps_notified"] == 2
    numbers = metrics_state.database_numbers()
    assert numbers["repository_circuits_open"] == 1
    assert numbers["sync_failed_notices"] == {"pending": 0, "sent": 2, "failed": 0}

    # Visible: the link page, the app page, the overview, the link JSON.
    app_id = apps["app_ids"][0]
    link = client.get(f"/admin/api/links/{app_id}/{repository_id}").get_json()["data"]
    assert link["state"] == "held" and "circuit is open until" in link["state_text"]
    circuit = link["repository_circuit"]
    assert (circuit["circuit"], circuit["circuit_open"], circuit["consecutive_failures"],
            circuit["threshold"], circuit["notices_sent"]) == ("open", True, THRESHOLD,
                                                               THRESHOLD, 2)
    page = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "Git circuit open" in page and "Close repository circuit" in page
    assert "git: repository not found" in page and "sync_failed sent to 2 of 2" in page
    assert "⚠ sync_failed sent" in page
    app_page = client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert f'id="repo-circuit-{repository_id}"' in app_page and "Git circuit open" in app_page
    overview = client.get("/admin/").get_data(as_text=True)
    assert "Repositories with an open git circuit" in overview
    assert "Repositories git cannot reach" in overview and "acme/docs" in overview
    assert repository_circuit.state(repository_id)["circuit_open"] is True


def test_a_node_client_following_the_reference_accepts_sync_failed(seed, tmp_path):
    node = NodeClient("node-client-secret")
    try:
        repository_id = seed.repo(url=f"file://{tmp_path}/nothing-here.git")
        app_id = seed.app(base_url=node.base_url, auth_key=node.auth_key)
        seed.link(app_id, repository_id, status="pending_snapshot", retry_count=0)
        for _ in range(THRESHOLD + 2):  # the last two find the circuit open
            snapshot.run_snapshot(app_id, repository_id)
        run_queue()
        state = node.state()
        assert state["violations"] == []
        assert [e for e in state["events"] if e["event"] == "sync_failed"] == [
            {"event": "sync_failed", "app_id": app_id, "repository_id": repository_id,
             "consecutive_failures": THRESHOLD}]
    finally:
        node.close()


def test_app_answers_do_not_count_in_the_repository_circuit(seed, tmp_path):
    receiver = Receiver()
    receiver.status = 500
    try:
        repo = Repo(tmp_path)
        repo.commit({"README.md": "hi\n"})
        repository_id = seed.repo(url=repo.url)
        app_id = seed.app(base_url=receiver.base_url, auth_key=receiver.auth_key)
        seed.link(app_id, repository_id, status="pending_snapshot", retry_count=0)
        for _ in range(THRESHOLD + 1):
            snapshot.run_snapshot(app_id, repository_id)
        state = _repository(repository_id)
        assert (state["consecutive_failures"], state["circuit_opened_at"]) == (0, None)
    finally:
        receiver.close()


# --- durable: a worker killed between opening the circuit and sending ------------------------

def test_a_worker_killed_after_the_circuit_opened_still_sends_it_once(apps):
    repository_id, receivers = apps["repository_id"], apps["receivers"]
    _jobs(apps, THRESHOLD)
    assert _repository(repository_id)["circuit_opened_at"] is not None
    huey.flush()  # the sender's task died with its worker (or Redis lost it)
    assert [_sync_failed(r) for r in receivers] == [[], []]

    watchdog.tick()  # any consumer's watchdog finds the notices due and queues the sender
    assert any(name.endswith("send_sync_failed_notices") for name in run_queue())
    assert [len(_sync_failed(r)) for r in receivers] == [1, 1]
    assert sync_failed.tick() is False  # nothing left
    run_queue()
    assert [len(_sync_failed(r)) for r in receivers] == [1, 1]


def test_a_sender_that_dies_mid_send_is_overtaken_only_after_its_lease(apps):
    repository_id, receivers = apps["repository_id"], apps["receivers"]
    _jobs(apps, THRESHOLD)
    huey.flush()
    # Two senders at once (two machines): the second claims nothing while the first holds them.
    with psycopg.connect(TEST_DATABASE_URL, row_factory=psycopg.rows.dict_row) as first:
        claimed = notices_repo.claim_due(first, 20, 60)
        assert len(claimed) == 2
        with db.connection() as second:
            assert notices_repo.claim_due(second, 20, 60) == []
        first.commit()  # ... and then the first sender's process dies before sending
    assert sync_failed.tick() is False  # leased: not due
    assert sync_failed.send_due() == {"sent": 0, "retrying": 0, "failed": 0}
    with db.connection() as conn:  # the lease runs out
        conn.execute("UPDATE repository_sync_failed_notices SET next_attempt_at = now()")
    assert sync_failed.tick() is True
    run_queue()
    assert [len(_sync_failed(r)) for r in receivers] == [1, 1]


def test_an_app_that_is_down_is_tried_a_bounded_number_of_times_then_recorded(apps):
    repository_id, (down, up) = apps["repository_id"], apps["receivers"]
    down.status = 503
    _jobs(apps, THRESHOLD)
    run_queue()
    assert len(_sync_failed(up)) == 1 and len(_sync_failed(down)) == 1  # answered 503
    with db.connection() as conn:
        row = conn.execute("SELECT status, sends, last_error, next_attempt_at > now() AS later "
                           "FROM repository_sync_failed_notices WHERE app_id = %s",
                           (down.app_id,)).fetchone()
    assert (row["status"], row["sends"], row["later"]) == ("pending", 1, True)
    assert row["last_error"] == "POST /sync_failed → HTTP 503"
    for _ in range(sync_failed.MAX_SENDS - 1):
        with db.connection() as conn:
            conn.execute("UPDATE repository_sync_failed_notices SET next_attempt_at = now() "
                         "WHERE status = 'pending'")
        sync_failed.send_due()
    assert len(_sync_failed(down)) == sync_failed.MAX_SENDS and len(_sync_failed(up)) == 1
    with db.connection() as conn:
        statuses = {r["app_id"]: r["status"] for r in conn.execute(
            "SELECT app_id, status FROM repository_sync_failed_notices").fetchall()}
    assert statuses == {down.app_id: "failed", up.app_id: "sent"}
    assert sync_failed.tick() is False  # given up: never sent again
    [gave_up] = _attempts(repository_id, "notice_failed")
    assert gave_up["app_id"] == down.app_id and "HTTP 503" in gave_up["error"]
    assert sync_failed.prune() == 0  # kept for the attempt log's retention
    with db.connection() as conn:
        conn.execute("UPDATE repository_sync_failed_notices SET sent_at = sent_at - "
                     "interval '400 days', next_attempt_at = next_attempt_at - interval '400 days'")
    assert sync_failed.prune() == 2


# --- resetting: the first success, the half-open probe ---------------------------------------

def test_the_first_success_resets_the_count(apps, tmp_path):
    repository_id = apps["repository_id"]
    _jobs(apps, THRESHOLD - 2)
    assert _repository(repository_id)["consecutive_failures"] == THRESHOLD - 2
    Repo(tmp_path).commit({"README.md": "# back\n"})
    assert _jobs(apps, 1) == ["synced"]
    state = _repository(repository_id)
    assert (state["consecutive_failures"], state["circuit_opened_at"]) == (0, None)


def _closed_alerts(repository_id):
    """The repository_circuit_closed alerts recorded for the repository: who closed it."""
    with db.connection() as conn:
        return [row["facts"]["closed_by"] for row in conn.execute(
            "SELECT facts FROM alerts WHERE kind = 'repository_circuit_closed' "
            "AND subject = %s ORDER BY id", (f"repository:{repository_id}",))]


def _no_alerts():
    with db.connection() as conn:  # not among conftest's TABLES: emptied by the tests that look
        conn.execute("DELETE FROM alerts")


def test_after_the_cooldown_a_probe_that_succeeds_closes_the_circuit_and_releases_the_links(
        apps, tmp_path, git_calls):
    repository_id, receivers = apps["repository_id"], apps["receivers"]
    _no_alerts()
    _jobs(apps, THRESHOLD)
    run_queue()
    _expire_cooldown(repository_id)
    Repo(tmp_path).commit({"README.md": "# back\n"})
    # The half-open circuit lets one job through (the probe: take_probe moves the circuit's
    # end a lease ahead); a job of the other link meanwhile waits for the probe's outcome.
    with db.connection() as conn:
        assert repository_circuit.circuit_repo.take_probe(conn, repository_id, 60)["probe"]
    assert snapshot.run_snapshot(apps["app_ids"][1], repository_id) == "pending_snapshot"
    [waiting] = [r for r in _links(repository_id) if r["app_id"] == apps["app_ids"][1]]
    assert waiting["status"] == "pending_snapshot"
    assert waiting["next_attempt_at"] > datetime.now(timezone.utc)
    _expire_cooldown(repository_id)  # as if that probe's job had died: its lease ran out
    git_before = len(git_calls)
    assert snapshot.run_snapshot(apps["app_ids"][0], repository_id) == "synced"
    assert len(git_calls) > git_before
    state = _repository(repository_id)
    assert (state["consecutive_failures"], state["circuit_opened_at"],
            state["circuit_open_until"]) == (0, None, None)
    run_queue()  # the waiting link was queued at once, not left for its hold's end
    assert [r["status"] for r in _links(repository_id)] == ["synced", "synced"]
    assert [len(_sync_failed(r)) for r in receivers] == [1, 1]
    with db.connection() as conn:
        actors = [r["actor"] for r in conn.execute(
            "SELECT actor FROM audit_events WHERE action = 'repository.circuit_close'")]
    assert actors == ["system"]
    assert _closed_alerts(repository_id) == ["a git fetch went through"]


def test_a_probe_that_fails_reopens_the_circuit_and_tells_the_apps_again(apps, git_calls):
    repository_id, receivers = apps["repository_id"], apps["receivers"]
    _jobs(apps, THRESHOLD)
    run_queue()
    _expire_cooldown(repository_id)
    assert _jobs(apps, 1) == ["pending_snapshot"]  # the probe: git fails again
    state = _repository(repository_id)
    assert state["circuit_episode"] == 2 and state["consecutive_failures"] == THRESHOLD + 1
    assert state["circuit_open_until"] - state["now"] > timedelta(minutes=COOLDOWN_MIN - 1)
    run_queue()
    second = [_sync_failed(r)[-1][0] for r in receivers]
    assert [len(_sync_failed(r)) for r in receivers] == [2, 2]
    assert all(b["circuit_breaker"]["consecutive_failures"] == THRESHOLD + 1 for b in second)
    git_before = len(git_calls)
    assert _jobs(apps, 2) == ["pending_snapshot"] * 2  # open again: no git work
    assert len(git_calls) == git_before


# --- the operator's button -------------------------------------------------------------------

def test_close_repository_circuit_needs_login_and_csrf_and_queues_the_waiting_links(
        app, apps, client, auth):
    repository_id = apps["repository_id"]
    _no_alerts()
    _jobs(apps, THRESHOLD)
    run_queue()
    huey.flush()
    url = f"/admin/api/repositories/{repository_id}/circuit/close"
    assert client.post(url).status_code == 401
    assert auth.login().status_code == 200
    assert client.post(url, data={}).status_code in (400, 403)  # a form without its token
    assert _repository(repository_id)["circuit_opened_at"] is not None
    viewer, _ = client_as(app, "viewer")
    assert viewer.post(url).status_code == 403

    page = client.get(f"/admin/apps/{apps['app_ids'][0]}/links/{repository_id}")
    assert url in page.get_data(as_text=True)
    answer = auth.post(url, headers=HX)
    assert answer.status_code == 200
    fragment = answer.get_data(as_text=True)
    assert "Repository circuit closed: 2 queued" in fragment
    assert 'data-circuit="closed"' in fragment and "Close repository circuit" not in fragment
    state = _repository(repository_id)
    assert (state["consecutive_failures"], state["circuit_opened_at"],
            state["circuit_open_until"]) == (0, None, None)
    queued = sorted(task.args[0] for task in (huey.deserialize_task(m) for m in
                                               huey.storage.enqueued_items()))
    assert queued == sorted(apps["app_ids"])
    with db.connection() as conn:
        [event] = conn.execute("SELECT actor, target, details FROM audit_events "
                               "WHERE action = 'repository.circuit_close'").fetchall()
    assert (event["actor"], event["target"]) == ("admin", repository_id)
    assert event["details"]["was_open"] is True

    again = auth.post(url)  # JSON for scripts; closing a closed circuit is harmless
    assert again.status_code == 200
    assert again.get_json()["data"]["circuit"]["circuit_open"] is False
    assert _closed_alerts(repository_id) == ["closed by admin"]  # one close, one alert
    assert auth.post("/admin/api/repositories/repo_nope/circuit/close").status_code == 404
    got = client.get(f"/admin/api/repositories/{repository_id}/circuit").get_json()
    assert got["data"]["circuit"]["circuit"] == "closed"


# --- settings --------------------------------------------------------------------------------

def test_settings_are_validated():
    env = dict(TEST_ENV)
    settings = load_settings(env)
    assert (settings.repository_failure_threshold, settings.repository_cooldown_minutes) == \
        (5, 30)
    for name, value in (("REPOSITORY_FAILURE_THRESHOLD", "0"),
                        ("REPOSITORY_COOLDOWN_MINUTES", "soon")):
        with pytest.raises(ConfigError, match=name):
            load_settings({**env, name: value})
