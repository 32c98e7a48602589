"""Every retry followed to its outcome: the attempt log, the link page, a bulk operation's
delivery breakdown, selections, and the truthful empty states. Real PostgreSQL, Redis, git and
a receiver that checks signatures; Huey tasks are dequeued and executed in-process."""
import dataclasses
import itertools
import re
from datetime import datetime, timedelta, timezone

import pytest

from docora_admin import db, runtime
from docora_admin.huey_app import huey
from docora_admin.services.retries import outcomes
from docora_admin.services.jobs import sweeper
from tests.test_snapshot import Repo
from tests.webhook_receiver import Receiver

HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def worker_settings(tmp_path, monkeypatch, empty_queue):
    """Fast, bounded attempts: one failed attempt gives up unless a test says otherwise."""
    monkeypatch.setenv("DOCORA_GIT_CACHE", str(tmp_path / "cache"))
    settings = dataclasses.replace(runtime.settings(), delivery_timeout_s=2,
                                   max_retry_attempts=1, retry_backoff_seconds=60)
    monkeypatch.setattr(runtime, "_settings", settings)
    return settings


@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path)
    r.commit({"README.md": "# Docs\n", "guide.md": "Guide\n"})
    return r


@pytest.fixture
def receivers():
    made = []

    def make(status=200):
        receiver = Receiver()
        receiver.status = status
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


_copies = itertools.count()


def linked(seed, receiver, repo, count=1, name=None, status="failed"):
    """`count` links of one app (posting to `receiver`) to repositories that are all `repo`
    under different URLs (repositories.github_url is unique)."""
    app_id = seed.app(name, base_url=receiver.base_url, auth_key=receiver.auth_key)
    links = []
    for n in range(count):
        url = f"file://{repo.bare.parent}/{'./' * next(_copies)}{repo.bare.name}"
        links.append(seed.link(app_id, seed.repo(url=url), status=status, age_minutes=n,
                               retry_count=5 if status == "failed" else 0))
    return app_id, links


def run_queue():
    """Execute everything queued, including tasks the run itself queues; return the names."""
    names = []
    while (task := huey.dequeue()) is not None:
        names.append(task.name)
        huey.execute(task)
    return names


def run_scheduled():
    """Execute the scheduled (backoff) jobs now, as if their time had come."""
    tasks = huey.scheduled()
    huey.storage.flush_schedule()
    for task in tasks:
        task.eta = None
        huey.execute(task)


def link_json(client, app_id, repository_id):
    response = client.get(f"/admin/api/links/{app_id}/{repository_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]


# --- attempt log and link page ---------------------------------------------------------------

def test_a_failing_then_succeeding_link_logs_every_attempt(client, logged_in, seed, repo,
                                                          receivers, monkeypatch,
                                                          worker_settings):
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(worker_settings, max_retry_attempts=3))
    receiver = receivers(status=500)
    app_id, [(_, repository_id)] = linked(seed, receiver, repo)
    assert logged_in.post("/admin/api/retry", json={
        "app_id": app_id, "repository_id": repository_id}).status_code == 200
    run_queue()  # attempt 1 fails: the app answers 500

    data = link_json(client, app_id, repository_id)
    assert data["state"] == "retrying" and data["action"] == "retry_now"
    assert data["state_text"].startswith("Retrying — attempt 1 of 3 failed, next attempt at ")
    assert re.search(r"\d\d:\d\d UTC \(in (\d+ s|1 min)\)$", data["state_text"])
    [first] = data["attempts"]
    assert (first["attempt"], first["outcome"], first["link_status"], first["http_status"],
            first["cause"]) == (1, "failed", "pending_snapshot", 500, "retry")
    assert first["error"] == "POST /create → HTTP 500" and first["files_sent"] == 0
    [backoff] = huey.scheduled()  # the next attempt waits for its time in Huey's schedule
    assert backoff.args[:2] == (app_id, repository_id)
    assert 50 < (backoff.eta - datetime.now(timezone.utc).replace(tzinfo=None)
                 ).total_seconds() <= 60

    receiver.status = 200
    run_scheduled()  # attempt 2 delivers
    data = link_json(client, app_id, repository_id)
    assert data["state"] == "delivered" and data["state_text"].startswith("Delivered at ")
    assert data["files_delivered"] == 2 and data["action"] is None
    second, first = data["attempts"]  # newest first
    assert (second["attempt"], second["outcome"], second["link_status"], second["files_sent"]) \
        == (2, "delivered", "synced", 2)
    assert second["bytes_sent"] > 0 and second["duration_ms"] >= 0
    assert receiver.bad_signatures == 0
    # The link page says the same in HTML.
    page = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "Delivered at" in page and page.count('data-outcome="') == 2


def test_log_and_status_are_written_together(seed, repo, receivers):
    receiver = receivers(status=500)
    app_id, [(_, repository_id)] = linked(seed, receiver, repo, status="pending_snapshot")
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET job_generation = 3")
    from docora_admin.services.delivery import snapshot
    assert snapshot.run_snapshot(app_id, repository_id, None, 3) == "failed"  # limit 1
    with db.connection() as conn:
        link = conn.execute("SELECT status, retry_count, job_generation, last_error "
                            "FROM app_repositories").fetchone()
        log = conn.execute("SELECT outcome, link_status, error FROM delivery_attempts").fetchall()
    assert link == {"status": "failed", "retry_count": 1, "job_generation": 4,
                    "last_error": "POST /create → HTTP 500"}
    assert log == [{"outcome": "failed", "link_status": "failed",
                    "error": "POST /create → HTTP 500"}]
    assert snapshot.run_snapshot(app_id, repository_id, None, 3) is None  # stale: no new row


def test_retry_now_skips_the_backoff_and_the_old_job_does_nothing(client, logged_in, seed,
                                                                 repo, receivers, monkeypatch,
                                                                 worker_settings):
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(worker_settings, max_retry_attempts=3))
    receiver = receivers(status=500)
    app_id, [(_, repository_id)] = linked(seed, receiver, repo)
    logged_in.post("/admin/api/retry", json={"app_id": app_id, "repository_id": repository_id})
    run_queue()
    [waiting] = huey.scheduled()
    receiver.status = 200
    response = logged_in.post("/admin/api/retry/now",
                              json={"app_id": app_id, "repository_id": repository_id})
    assert response.status_code == 200 and response.get_json()["data"]["job_id"]
    run_queue()
    assert link_json(client, app_id, repository_id)["state"] == "delivered"
    waiting.eta = None
    assert huey.execute(waiting) is None  # its generation is gone: nothing happens
    assert len(link_json(client, app_id, repository_id)["attempts"]) == 2
    again = logged_in.post("/admin/api/retry/now",
                           json={"app_id": app_id, "repository_id": repository_id})
    assert again.status_code == 409


def test_link_page_and_json_404_for_unknown_links(client, logged_in):
    assert client.get("/admin/api/links/app_x/repo_x").status_code == 404
    assert client.get("/admin/apps/app_x/links/repo_x").status_code == 404


# --- a bulk operation reports its outcome ----------------------------------------------------

def _progress(client, operation_id):
    return client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]


def test_bulk_retry_with_half_failing_ends_finished_with_failures(client, logged_in, seed, repo,
                                                                 receivers):
    good, bad = receivers(200), receivers(500)
    linked(seed, good, repo, count=3, name="Good App")
    bad_app, bad_links = linked(seed, bad, repo, count=3, name="Broken App")
    started = logged_in.post("/admin/api/retry/all").get_json()["data"]
    operation_id = started["operation_id"]
    run_queue()  # the bulk task, then the six snapshot jobs it queued

    waiting = _progress(client, operation_id)
    assert (waiting["status"], waiting["succeeded"], waiting["completed"]) == ("completed", 6, 6)
    outcomes.settle_all()
    data = _progress(client, operation_id)
    assert data["phase"] == "settled" and data["settled_at"]
    assert data["outcome"] == {"delivered": 3, "failed_again": 3, "in_progress": 0, "held": 0, "gone": 0}
    assert (data["delivered"], data["delivery_failed"]) == (3, 3)
    # The seed's fields keep their meaning: 6 reset and queued.
    assert (data["total"], data["completed"], data["succeeded"], data["failed"]) == (6, 6, 6, 0)

    panel = client.get(f"/admin/api/retry/progress/{operation_id}", headers=HX)
    html = panel.get_data(as_text=True)
    assert 'data-outcome="with-failures"' in html and "Finished with failures" in html
    assert "Deliveries: 3 delivered, 3 failed again, 0 in progress" in html
    assert "load delay" not in html and "All delivered" not in html
    history = client.get("/admin/operations").get_data(as_text=True)
    assert "3 delivered, 3 failed again, 0 in progress" in history and "Finished with failures" in history

    page = client.get(f"/admin/operations/{operation_id}").get_data(as_text=True)
    assert "Retry the 3 that failed again" in page and page.count("Broken App") == 3
    detail = client.get(f"/admin/api/retry/operations/{operation_id}").get_json()["data"]
    assert sorted(r["repository_id"] for r in detail["failed_again"]["links"]) == sorted(
        r for _, r in bad_links)
    assert detail["requested_by"] == "admin" and detail["duration"]

    bad.status = 200
    again = logged_in.post("/admin/api/retry/selection", json={"failed_again_of": operation_id})
    assert again.status_code == 200 and again.get_json()["data"]["total"] == 3
    run_queue()
    outcomes.settle_all()
    second = _progress(client, again.get_json()["data"]["operation_id"])
    assert second["outcome"] == {"delivered": 3, "failed_again": 0, "in_progress": 0, "held": 0, "gone": 0}
    assert second["filter"] == {"failed_again_of": operation_id}
    html = client.get(f"/admin/api/retry/progress/{second['operation_id']}",
                      headers=HX).get_data(as_text=True)
    assert 'data-outcome="all-delivered"' in html and "✓ All delivered" in html
    # The first operation's history does not change when its links are retried again.
    assert _progress(client, operation_id)["outcome"]["failed_again"] == 3


def test_an_operation_whose_links_were_deleted_still_settles(client, logged_in, seed, repo,
                                                            receivers, monkeypatch):
    app_id, _ = linked(seed, receivers(200), repo, count=2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    huey.execute(huey.dequeue())  # reset and queue, but the jobs never run:
    with db.connection() as conn:
        conn.execute("DELETE FROM apps WHERE app_id = %s", (app_id,))
    outcomes.settle_all()
    assert _progress(client, operation_id)["phase"] == "delivering"
    monkeypatch.setattr(outcomes, "STUCK_AFTER_S", 0)
    outcomes.settle_all()
    data = _progress(client, operation_id)
    assert data["phase"] == "settled"
    assert data["outcome"] == {"delivered": 0, "failed_again": 0, "in_progress": 0, "held": 0, "gone": 2}


def test_reporting_does_not_touch_the_operation_row_per_job(client, logged_in, seed, repo,
                                                           receivers):
    linked(seed, receivers(200), repo, count=2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    huey.execute(huey.dequeue())
    run_queue()  # two deliveries: live counters in Redis, the row untouched until the recount
    with db.connection() as conn:
        row = conn.execute("SELECT delivered, settled_at FROM bulk_operations").fetchone()
    assert row == {"delivered": 0, "settled_at": None}
    assert _progress(client, operation_id)["outcome"]["delivered"] == 2  # from Redis
    outcomes.settle_all()
    with db.connection() as conn:
        row = conn.execute("SELECT delivered FROM bulk_operations").fetchone()
    assert row == {"delivered": 2}


# --- retry exactly what you see --------------------------------------------------------------

def _failed_ids():
    with db.connection() as conn:
        return {r["repository_id"] for r in conn.execute(
            "SELECT repository_id FROM app_repositories WHERE status = 'failed'")}


def test_a_filtered_retry_resets_only_matching_links(client, logged_in, seed):
    app_id = seed.app("Acme")
    timeouts = [seed.link(app_id, seed.repo(), last_error="timeout after 30 s on POST /create",
                          age_minutes=n) for n in range(2)]
    others = [seed.link(app_id, seed.repo(), last_error="POST /create → HTTP 500")
              for _ in range(3)]
    assert client.get("/admin/api/retry/estimate?search=timeout").get_json() == {
        "data": {"total": 2}}
    page = client.get("/admin/notifications?search=timeout").get_data(as_text=True)
    assert "Retry 2 matching “timeout”" in page
    assert '<span class="count" id="failed-total" title="matching the filter">2</span>' in page
    response = logged_in.post("/admin/api/retry/selection", json={"search": "timeout"})
    assert response.status_code == 200 and response.get_json()["data"]["total"] == 2
    run_queue_admin_only()
    assert _failed_ids() == {r for _, r in others}
    history = client.get("/admin/operations").get_data(as_text=True)
    assert "Selection: matching “timeout”" in history
    assert {r for _, r in timeouts}.isdisjoint(_failed_ids())


def test_a_failed_since_range_is_part_of_the_filter(client, logged_in, seed):
    app_id = seed.app("Acme")
    recent = seed.link(app_id, seed.repo(), age_minutes=5)
    seed.link(app_id, seed.repo(), age_minutes=600)
    since = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert client.get(f"/admin/api/retry/estimate?failed_since={since}").get_json()["data"][
        "total"] == 1
    listed = client.get(f"/admin/api/notifications/failed?failed_since={since}").get_json()[
        "data"]
    assert [r["repository_id"] for r in listed["data"]] == [recent[1]]
    started = logged_in.post("/admin/api/retry/selection", json={"failed_since": since})
    assert started.get_json()["data"]["total"] == 1
    run_queue_admin_only()
    assert recent[1] not in _failed_ids() and len(_failed_ids()) == 1


def test_a_selection_of_three_rows_resets_only_those(client, logged_in, seed):
    app_id = seed.app("Acme")
    links = seed.failed_links(app_id, 6)
    chosen = links[:3]
    response = logged_in.post("/admin/api/retry/selection", json={"links": [
        {"app_id": a, "repository_id": r} for a, r in chosen]})
    assert response.status_code == 200
    assert response.get_json()["data"]["message"] == "Bulk retry started"
    assert response.get_json()["data"]["total"] == 3
    run_queue_admin_only()
    assert _failed_ids() == {r for _, r in links[3:]}
    # The same selection again: nothing of it is failed any more.
    again = logged_in.post("/admin/api/retry/selection", json={"links": [
        {"app_id": a, "repository_id": r} for a, r in chosen]})
    assert (again.status_code, again.get_json()) == (404, {"error": "No failed notifications match"})


def test_a_selection_from_the_lists_checkboxes(client, logged_in, seed):
    app_id = seed.app("Acme")
    links = seed.failed_links(app_id, 4)
    form = {"link": [f"{a} {r}" for a, r in links[:2]]}
    response = logged_in.post("/admin/api/retry/selection", data=form, headers=HX)
    assert response.status_code == 200 and 'data-state="running"' in response.get_data(
        as_text=True)
    run_queue_admin_only()
    assert _failed_ids() == {r for _, r in links[2:]}


@pytest.mark.parametrize("body,message", [
    ({"links": []}, "links must be a non-empty list"),
    ({"links": [{"app_id": "a"}]}, "links[0] must be an object"),
    ({"links": [{"app_id": "a", "repository_id": "r"}] * 1001}, "links may hold at most 1,000"),
    ({"search": "x" * 201}, "search must be at most 200"),
    ({"failed_since": "yesterday"}, "failed_since must be a date and time"),
    ({"failed_since": "2026-11-29T10:00", "failed_until": "2026-11-29T09:00"},
     "failed_until must be later than failed_since"),
    ({"failed_again_of": "nope"}, "failed_again_of must be an operation id"),
    ({"search": "x", "links": [{"app_id": "a", "repository_id": "r"}]}, "Send either links"),
    ({"colour": "red"}, "Unknown field 'colour'"),
    ({"app_id": 5}, "app_id is not a valid app id"),
    # An empty selection is not "everything" (that is retry/all).
    ({}, "Send links, failed_again_of, or at least one filter field"),
    ({"search": "   ", "app_id": ""}, "Send links, failed_again_of, or at least one filter"),
    ({"links": None, "failed_again_of": None}, "Send links, failed_again_of, or at least one"),
])
def test_bad_selections_are_400_naming_the_field_and_start_nothing(client, logged_in, seed,
                                                                  body, message):
    seed.failed_links(seed.app(), 2)
    response = logged_in.post("/admin/api/retry/selection", json=body)
    assert response.status_code == 400 and response.get_json()["error"].startswith(message)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM bulk_operations").fetchone()["n"] == 0


def test_overlapping_starts_are_409_with_the_running_operation(client, logged_in, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    seed.failed_links(acme, 2)
    seed.failed_links(globex, 2)
    everything = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    busy = logged_in.post("/admin/api/retry/selection", json={"search": "HTTP"})
    assert busy.status_code == 409 and busy.get_json()["operation_id"] == everything
    of_acme = logged_in.post("/admin/api/retry/selection", json={"app_id": acme})
    assert of_acme.status_code == 200
    busy = logged_in.post(f"/admin/api/retry/app/{acme}")
    assert busy.status_code == 409
    assert busy.get_json()["operation_id"] == of_acme.get_json()["data"]["operation_id"]


def run_queue_admin_only():
    """Execute the bulk tasks; leave the snapshot jobs they queue unexecuted."""
    for task in [t for t in iter(huey.dequeue, None)]:
        if task.name != "snapshot":
            huey.execute(task)


# --- races show state, not errors ------------------------------------------------------------

def test_a_busy_start_shows_the_running_operation(client, logged_in, seed):
    seed.failed_links(seed.app(), 2)
    first = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    response = logged_in.post("/admin/api/retry/all", headers={**HX, "HX-Target": "bulk-panel"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'data-operation-id="{first}"' in html and 'data-state="running"' in html
    assert 'id="bulk-notice"' in html and "already running" in html
    assert "bulk-cancel-button" in html


def test_a_late_cancel_shows_the_final_state(client, logged_in, seed):
    seed.failed_links(seed.app(), 2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    run_queue_admin_only()
    response = logged_in.post(f"/admin/api/retry/cancel/{operation_id}",
                              headers={**HX, "HX-Target": "bulk-panel"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-state="completed"' in html
    assert "Not cancelled: Operation already completed." in html
    assert "bulk-cancel-button" not in html


def test_an_app_page_during_a_global_run_shows_that_run(client, logged_in, seed):
    app_id = seed.app("Acme")
    seed.failed_links(app_id, 2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    page = client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert f'data-operation-id="{operation_id}"' in page
    assert "A bulk retry of all apps is running" in page
    assert "Retry all failed for Acme" not in page


# --- the list tells the truth ----------------------------------------------------------------

def test_empty_failed_list_says_what_is_being_retried(client, logged_in, seed):
    app_id = seed.app("Acme")
    for _ in range(2):
        seed.link(app_id, seed.repo(), status="pending_snapshot", retry_count=1)
    page = client.get("/admin/notifications").get_data(as_text=True)
    assert "No failed notifications — 2 are being retried" in page
    assert 'id="in-progress-link"' in page and "All notifications delivered" not in page
    in_progress = client.get("/admin/notifications?view=in_progress").get_data(as_text=True)
    assert in_progress.count('class="progress-row"') == 2
    assert "Retrying — attempt 1 of 1 failed" in in_progress
    api = client.get("/admin/api/notifications/in-progress").get_json()["data"]
    assert api["pagination"]["total"] == 2 and api["counts"] == {"failed": 0, "in_progress": 2}
    assert {r["state"] for r in api["data"]} == {"retrying"}


def test_a_page_past_the_end_says_so(client, logged_in, seed):
    seed.failed_links(seed.app(), 3)
    page = client.get("/admin/notifications?page=999&limit=10").get_data(as_text=True)
    assert "Page 999 is past the end" in page and 'id="last-page-link"' in page
    assert "All notifications delivered" not in page


def test_a_search_with_no_hit_names_the_search(client, logged_in, seed):
    seed.failed_links(seed.app(), 3)
    page = client.get("/admin/notifications?search=zebra").get_data(as_text=True)
    assert "No failed notification matches “zebra”" in page
    assert "All notifications delivered" not in page


def test_all_delivered_only_when_nothing_is_failed_or_in_progress(client, logged_in, seed):
    seed.link(seed.app(), seed.repo(), status="synced")
    page = client.get("/admin/notifications").get_data(as_text=True)
    assert "All notifications delivered" in page


def test_the_row_retry_follows_its_attempt(client, logged_in, seed, repo, receivers):
    app_id, [(_, repository_id)] = linked(seed, receivers(200), repo)
    response = logged_in.post("/admin/api/retry", data={"app_id": app_id,
                                                        "repository_id": repository_id},
                              headers=HX)
    html = response.get_data(as_text=True)
    assert 'data-state="queued"' in html and 'hx-trigger="load delay:2s"' in html
    assert f"/admin/apps/{app_id}/links/{repository_id}" in html  # keeps app and repository
    run_queue()
    polled = client.get(f"/admin/links/{app_id}/{repository_id}/row?poll=1", headers=HX)
    html = polled.get_data(as_text=True)
    assert 'data-state="delivered"' in html and "Delivered ✓" in html
    assert "hx-trigger" not in html  # resolved: polling stops
    assert polled.headers["HX-Trigger"] == "counts-changed"
    gave_up = client.get(f"/admin/links/{app_id}/{repository_id}/row?poll=500", headers=HX)
    assert "hx-trigger" not in gave_up.get_data(as_text=True)


def test_sweeper_requeues_a_link_whose_job_was_lost(seed, repo, receivers):
    app_id, [(_, repository_id)] = linked(seed, receivers(200), repo, status="pending_snapshot")
    with db.connection() as conn:  # reset a while ago; its job never reached the queue
        conn.execute("UPDATE app_repositories SET next_attempt_at = now() - interval '5 min', "
                     "job_generation = 4, retry_cause = 'retry'")
    assert sweeper.requeue_lost_jobs() == 1
    [task] = [huey.dequeue()]
    assert task.args == (app_id, repository_id, None, 5)
    huey.execute(task)
    with db.connection() as conn:
        assert conn.execute("SELECT cause, outcome FROM delivery_attempts").fetchone() == {
            "cause": "retry", "outcome": "delivered"}


def test_sweeper_leaves_a_job_still_waiting_in_the_queue(seed, repo, receivers):
    from docora_admin.services.jobs import job_queue

    app_id, [(_, repository_id)] = linked(seed, receivers(200), repo, status="pending_snapshot")
    with db.connection() as conn:
        stamp = conn.execute("""
            UPDATE app_repositories SET next_attempt_at = now() - interval '5 min',
                   job_generation = 1
            RETURNING (extract(epoch FROM next_attempt_at) * 1000000)::bigint AS s""").fetchone()
    job_queue.push_snapshot_jobs([(app_id, repository_id, None, 1)], stamp["s"])
    assert sweeper.requeue_lost_jobs() == 0  # old, but its job is next in line
    assert huey.pending_count() == 1


def test_sweeper_releases_an_expired_lease(seed, repo, receivers):
    from docora_admin.services.delivery import snapshot

    receiver = receivers(200)
    app_id, [(_, repository_id)] = linked(seed, receiver, repo, status="pending_snapshot")
    with db.connection() as conn:
        from docora_admin.repositories import snapshot_links
        claim = snapshot_links.claim(conn, app_id, repository_id, None, 60)
        conn.execute("UPDATE app_repositories SET next_attempt_at = now() - interval '1 s'")
    assert sweeper.release_expired_leases() == 1  # the worker holding it died
    [task] = [huey.dequeue()]
    assert task.args[3] == claim["job_generation"] + 1
    with db.connection() as conn:
        assert snapshot_links.mark_synced(conn, claim) is None  # the dead worker lost its claim
    assert snapshot.run_snapshot(*task.args) == "synced"
    with db.connection() as conn:
        log = conn.execute("SELECT outcome, error FROM delivery_attempts ORDER BY id").fetchall()
    assert [r["outcome"] for r in log] == ["interrupted", "delivered"]
    assert "lease expired" in log[0]["error"]


def test_a_filter_with_no_match_and_an_empty_in_progress_view_say_so(client, logged_in, seed):
    app_id = seed.app("Acme")
    seed.failed_links(app_id, 2)
    page = client.get("/admin/notifications?failed_since=2099-01-01T00:00").get_data(as_text=True)
    assert "No failed notifications match this filter" in page
    assert "Look among the in progress" in page  # not counted with a range: offered, not hidden
    empty = client.get("/admin/notifications?view=in_progress").get_data(as_text=True)
    assert "Nothing in progress" in empty and ">2 failed</a>" in empty
