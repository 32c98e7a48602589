"""Delivery control against a real receiver, PostgreSQL and Redis: an app paused, its circuit
opening and closing, Retry-After, a bulk operation paused and resumed, re-syncs. Huey tasks are
dequeued and executed in-process (the consumer's own order), except where processes matter."""
import dataclasses
import time
from datetime import datetime, timedelta, timezone

import pytest

from docora_admin import db, runtime
from docora_admin.huey_app import huey
from docora_admin.services.retries import bulk_runner, outcomes
from docora_admin.services.control import delivery_control
from docora_admin.services.jobs import sweeper
from tests.test_outcomes import linked, receivers, repo, run_queue, run_scheduled  # noqa: F401

HX = {"HX-Request": "true"}
THRESHOLD = 3


@pytest.fixture(autouse=True)
def control_settings(tmp_path, monkeypatch, empty_queue):
    monkeypatch.setenv("DOCORA_GIT_CACHE", str(tmp_path / "cache"))
    settings = dataclasses.replace(
        runtime.settings(), delivery_timeout_s=2, max_retry_attempts=5,
        retry_backoff_seconds=60, circuit_failure_threshold=THRESHOLD, circuit_probe_seconds=30,
        circuit_probe_max_seconds=120, app_rate_per_second=0, app_max_concurrency=0,
        lost_job_grace_seconds=0)
    monkeypatch.setattr(runtime, "_settings", settings)
    return settings


def _links(app_id):
    with db.connection() as conn:
        return conn.execute("""
            SELECT repository_id, status, retry_count, job_generation FROM app_repositories
            WHERE app_id = %s ORDER BY repository_id""", (app_id,)).fetchall()


def _attempts(app_id):
    with db.connection() as conn:
        return conn.execute("""
            SELECT outcome, http_status, error FROM delivery_attempts WHERE app_id = %s
            ORDER BY id""", (app_id,)).fetchall()


def _delivery(client, app_id):
    response = client.get(f"/admin/api/apps/{app_id}/delivery")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]["delivery"]


def _probe_due(app_id):
    with db.connection() as conn:
        conn.execute("UPDATE app_delivery_control SET probe_at = now() WHERE app_id = %s",
                     (app_id,))


def test_a_paused_app_receives_nothing_loses_no_job_and_gets_everything_on_resume(
        client, logged_in, seed, repo, receivers):
    receiver = receivers(200)
    app_id, links = linked(seed, receiver, repo, count=3, name="Paused App")
    paused = logged_in.post(f"/admin/api/apps/{app_id}/pause")
    assert paused.status_code == 200
    assert paused.get_json()["data"]["delivery"]["paused_by"] == "admin"

    logged_in.post("/admin/api/retry/all")
    run_queue()
    assert receiver.arrivals == []
    assert [(r["status"], r["retry_count"]) for r in _links(app_id)] == \
        [("pending_snapshot", 0)] * 3
    assert _attempts(app_id) == []
    # Held links look lost to the sweeper (due, no job, grace 0), and it leaves them alone.
    assert sweeper.requeue_lost_jobs() == 0
    state = _delivery(client, app_id)
    assert (state["held_reason"], state["held_links"]) == ("paused", 3)
    assert client.get(f"/admin/api/links/{app_id}/{links[0][1]}").get_json()["data"][
        "state"] == "held"
    apps_page = client.get("/admin/apps").get_data(as_text=True)
    assert "‖ Paused" in apps_page and "app-resume-button" in apps_page
    overview = client.get("/admin/").get_data(as_text=True)
    assert "Apps whose deliveries are held" in overview and "Paused App" in overview

    huey.flush()  # a worker restart (or Redis emptied) while paused: the links are in PostgreSQL
    # The apps list's Resume button: htmx, swapping nothing; the table reloads on the event.
    resumed = logged_in.post(f"/admin/api/apps/{app_id}/resume",
                             headers={**HX, "HX-Target": f"app-actions-{app_id}"})
    assert resumed.status_code == 200 and resumed.headers["HX-Trigger"] == "delivery-changed"
    assert "Deliveries resumed: 3 queued" in resumed.get_data(as_text=True)
    run_queue()
    assert [r["status"] for r in _links(app_id)] == ["synced"] * 3
    assert len(receiver.deliveries) == 6 and receiver.bad_signatures == 0
    assert _delivery(client, app_id)["held"] is False


def test_the_circuit_opens_after_n_failures_and_the_rest_keep_their_attempts(
        client, logged_in, seed, repo, receivers):
    receiver = receivers(500)
    app_id, _ = linked(seed, receiver, repo, count=8, name="Down App")
    logged_in.post("/admin/api/retry/all")
    run_queue()
    assert len(receiver.arrivals) == THRESHOLD  # one POST per attempt: each failed at once
    counts = sorted(r["retry_count"] for r in _links(app_id))
    assert counts == [0] * 5 + [1] * THRESHOLD
    state = _delivery(client, app_id)
    assert (state["circuit"], state["held_reason"]) == ("open", "circuit_open")
    assert state["consecutive_failures"] == THRESHOLD and "HTTP 500" in state["last_error"]
    assert state["held_links"] == 5
    page = client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert "⚡ Circuit open" in page and "Close circuit" in page

    # A probe that fails pushes the next one further out.
    assert delivery_control.tick()["probes"] == 0  # not due yet
    _probe_due(app_id)
    assert delivery_control.tick()["probes"] == 1
    run_queue()
    assert len(receiver.arrivals) == THRESHOLD + 1
    state = _delivery(client, app_id)
    assert state["circuit"] == "open"
    next_probe = datetime.fromisoformat(state["next_probe_at"])
    assert next_probe > datetime.now(timezone.utc) + timedelta(seconds=45)  # 2 × 30 s

    # A probe that goes through closes the circuit and releases every deferred link.
    receiver.status = 200
    _probe_due(app_id)
    delivery_control.tick()
    run_queue()
    state = _delivery(client, app_id)
    assert (state["circuit"], state["consecutive_failures"], state["held"]) == ("closed", 0,
                                                                               False)
    statuses = [r["status"] for r in _links(app_id)]
    # The probe and the three never attempted (the failed probe took one of the four).
    assert statuses.count("synced") == 4
    run_scheduled()  # the four that failed wait out their backoff, then deliver
    assert [r["status"] for r in _links(app_id)] == ["synced"] * 8


def test_an_operator_closes_the_circuit_by_hand(client, logged_in, seed, repo, receivers):
    receiver = receivers(500)
    app_id, _ = linked(seed, receiver, repo, count=4)
    logged_in.post("/admin/api/retry/all")
    run_queue()
    assert _delivery(client, app_id)["circuit"] == "open"
    receiver.status = 200
    closed = logged_in.post(f"/admin/api/apps/{app_id}/circuit/close", headers=HX)
    html = closed.get_data(as_text=True)
    assert closed.status_code == 200 and 'data-circuit="closed"' in html
    assert "Circuit closed: 1 queued" in html
    run_queue()
    assert sorted(r["status"] for r in _links(app_id)) == ["pending_snapshot"] * 3 + ["synced"]


def test_retry_after_defers_the_app_without_counting(client, logged_in, seed, repo, receivers):
    receiver = receivers(429)
    receiver.retry_after = 2
    app_id, _ = linked(seed, receiver, repo, count=3)
    logged_in.post("/admin/api/retry/all")
    run_queue()
    assert len(receiver.arrivals) == 1  # the others were held at once
    [attempt] = _attempts(app_id)
    assert (attempt["outcome"], attempt["http_status"]) == ("deferred", 429)
    assert "asked to wait 2 s" in attempt["error"]
    assert [r["retry_count"] for r in _links(app_id)] == [0, 0, 0]
    state = _delivery(client, app_id)
    assert state["held_reason"] == "deferred" and state["consecutive_failures"] == 0

    receiver.status = 200
    assert delivery_control.tick()["released"] == 0  # not yet
    wait_until = datetime.fromisoformat(state["deferred_until"])
    time.sleep(max(0.0, (wait_until - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    assert delivery_control.tick()["released"] == 1
    run_queue()
    run_scheduled()  # the deferred link's own job: a no-op, its link was released with the rest
    assert [r["status"] for r in _links(app_id)] == ["synced"] * 3


def test_retry_after_as_an_http_date_and_nonsense():
    now = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)
    assert delivery_control.retry_after_seconds("Sun, 29 Nov 2026 12:00:30 GMT", now) == 30
    assert delivery_control.retry_after_seconds("120") == 120
    assert delivery_control.retry_after_seconds("99999999") == 3600  # capped
    assert delivery_control.retry_after_seconds("soon") is None
    assert delivery_control.retry_after_seconds(None) is None


def _bulk_tasks_only():
    """Run the queued bulk tasks, leaving snapshot jobs queued."""
    kept = []
    while (task := huey.dequeue()) is not None:
        if task.name == "run_bulk_retry":
            huey.execute(task)
        else:
            kept.append(task)
    for task in kept:
        huey.enqueue(task)


def test_a_paused_bulk_retry_keeps_its_cursor_and_resumes_each_target_once(
        client, logged_in, seed, monkeypatch):
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(runtime.settings(), bulk_chunk_size=2))
    app_id = seed.app("Chunked App")
    seed.failed_links(app_id, 7)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    assert bulk_runner.run_one_chunk(operation_id) == 2

    paused = logged_in.post(f"/admin/api/retry/pause/{operation_id}")
    assert paused.status_code == 200
    assert paused.get_json()["data"]["operation"]["status"] == "paused"
    _bulk_tasks_only()  # the task queued at the start runs now: it stops at once
    progress = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert (progress["status"], progress["paused"], progress["succeeded"]) == ("paused", True, 2)
    assert bulk_runner.resume_stalled(0) == []  # paused is not stalled
    panel = client.get(f"/admin/api/retry/progress/{operation_id}", headers=HX)
    html = panel.get_data(as_text=True)
    assert 'data-state="paused"' in html and "bulk-resume-button" in html
    assert "‖ Paused" in client.get("/admin/operations").get_data(as_text=True)
    busy = logged_in.post("/admin/api/retry/all")
    assert busy.status_code == 409 and busy.get_json()["operation_id"] == operation_id
    again = logged_in.post(f"/admin/api/retry/pause/{operation_id}")
    assert again.status_code == 409

    assert logged_in.post(f"/admin/api/retry/resume/{operation_id}").status_code == 200
    _bulk_tasks_only()
    progress = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert (progress["status"], progress["succeeded"], progress["total"]) == ("completed", 7, 7)
    # Every target reset exactly once: one generation each.
    assert [(r["status"], r["job_generation"]) for r in _links(app_id)] == \
        [("pending_snapshot", 1)] * 7


def test_cancel_works_from_paused(client, logged_in, seed, monkeypatch):
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(runtime.settings(), bulk_chunk_size=2))
    app_id = seed.app()
    seed.failed_links(app_id, 5)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    bulk_runner.run_one_chunk(operation_id)
    logged_in.post(f"/admin/api/retry/pause/{operation_id}")
    assert logged_in.post(f"/admin/api/retry/cancel/{operation_id}").status_code == 200
    progress = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert (progress["status"], progress["succeeded"]) == ("cancelled", 2)
    assert sorted(r["status"] for r in _links(app_id)) == ["failed"] * 3 + [
        "pending_snapshot"] * 2
    assert logged_in.post(f"/admin/api/retry/resume/{operation_id}").status_code == 409


def test_resync_of_one_link_sends_every_file_again(client, logged_in, seed, repo, receivers):
    receiver = receivers(200)
    app_id, [(_, repository_id)] = linked(seed, receiver, repo, count=1)
    logged_in.post("/admin/api/retry", json={"app_id": app_id, "repository_id": repository_id})
    run_queue()
    assert receiver.actions() == [("create", "README.md"), ("create", "guide.md")]
    response = logged_in.post("/admin/api/links/resync",
                              json={"app_id": app_id, "repository_id": repository_id})
    assert response.status_code == 200 and response.get_json()["data"]["files_cleared"] == 2
    run_queue()
    assert receiver.actions() == [("create", "README.md")] * 2 + [("create", "guide.md")] * 2
    link = client.get(f"/admin/api/links/{app_id}/{repository_id}").get_json()["data"]
    assert (link["status"], link["episode"]["cause"]) == ("synced", "resync")


def test_resync_of_an_app_is_a_bulk_operation(client, logged_in, seed, repo, receivers):
    receiver = receivers(200)
    app_id, _ = linked(seed, receiver, repo, count=2, name="Resync App")
    logged_in.post("/admin/api/retry/all")
    run_queue()
    assert len(receiver.deliveries) == 4
    started = logged_in.post(f"/admin/api/apps/{app_id}/resync")
    assert started.status_code == 200
    data = started.get_json()["data"]
    assert (data["message"], data["total"]) == ("Bulk re-sync started", 2)
    run_queue()
    outcomes.settle_all()
    progress = client.get(f"/admin/api/retry/progress/{data['operation_id']}").get_json()["data"]
    assert (progress["kind"], progress["status"], progress["succeeded"]) == ("resync",
                                                                             "completed", 2)
    assert progress["outcome"]["delivered"] == 2 and progress["phase"] == "settled"
    assert len(receiver.deliveries) == 8  # every file of both links, once more
    assert "Re-sync (every file again)" in client.get("/admin/operations").get_data(as_text=True)


def test_bad_delivery_control_requests_change_nothing(client, logged_in, seed):
    assert logged_in.post("/admin/api/apps/app_nope/pause").get_json() == {
        "error": "App not found"}
    app_id = seed.app()
    for body in ({"rate_per_second": "fast"}, {"rate_per_second": 0},
                 {"max_concurrency": 2.5}, {"max_concurrency": True},
                 {"rate_per_second": "nan"}):
        response = logged_in.post(f"/admin/api/apps/{app_id}/limits", json=body)
        assert response.status_code == 400, body
    saved = logged_in.post(f"/admin/api/apps/{app_id}/limits",
                           json={"rate_per_second": 50, "max_concurrency": 3})
    state = saved.get_json()["data"]["delivery"]
    assert (state["rate_per_second"], state["max_concurrency"], state["limits_overridden"]) == (
        50, 3, True)
    reset = logged_in.post(f"/admin/api/apps/{app_id}/limits",
                           json={"rate_per_second": None, "max_concurrency": ""})
    assert reset.get_json()["data"]["delivery"]["limits_overridden"] is False
    assert logged_in.post("/admin/api/links/resync", json={"app_id": app_id}).status_code == 400
    assert logged_in.post("/admin/api/retry/pause/bulk_0000000000000000").status_code == 404


def test_only_a_failed_probe_pushes_the_next_probe_out(seed):
    """Attempts already under way when the circuit opens fail too; they add to the streak but do
    not count as failed probes (else the first probe would wait the capped maximum)."""
    from docora_admin.repositories import delivery_control as control_repo

    app_id = seed.app()

    def fail(was_probe=False):  # each attempt's outcome is its own transaction
        with db.connection() as conn:
            return control_repo.record_failed(conn, app_id, "HTTP 500", THRESHOLD, 30, 600,
                                              was_probe)

    for _ in range(THRESHOLD):
        row = fail()
    assert row["opened"] and row["probe_failures"] == 0
    first_probe = row["probe_at"]
    for _ in range(5):  # in flight when it opened
        row = fail()
    assert (row["probe_failures"], row["probe_at"]) == (0, first_probe)
    assert row["consecutive_failures"] == THRESHOLD + 5 and not row["opened"]
    row = fail(was_probe=True)
    assert row["probe_failures"] == 1 and row["probe_at"] > first_probe


def test_a_release_in_batches_queues_each_held_link_once(client, logged_in, seed, monkeypatch):
    monkeypatch.setattr(delivery_control, "RELEASE_BATCH", 2)
    app_id = seed.app()
    seed.failed_links(app_id, 5)
    logged_in.post(f"/admin/api/apps/{app_id}/pause")
    logged_in.post("/admin/api/retry/all")
    run_queue()  # reset (generation 1), every job dropped at the claim
    huey.flush()
    assert delivery_control.resume_app(app_id)[1] == 5
    assert [r["job_generation"] for r in _links(app_id)] == [2] * 5
    assert huey.pending_count() == 5


def test_the_in_progress_export_says_held_for_a_paused_apps_links(client, logged_in, seed):
    app_id = seed.app("Paused Export App")
    seed.failed_links(app_id, 2)
    logged_in.post(f"/admin/api/apps/{app_id}/pause")
    logged_in.post("/admin/api/retry/all")
    run_queue()
    lines = client.get("/admin/api/notifications/in-progress.jsonl").get_data(
        as_text=True).splitlines()
    assert len(lines) == 2 and all('"state": "held"' in line or '"state":"held"' in line
                                   for line in lines)
