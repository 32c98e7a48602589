"""Single and bulk retries through the JSON API, driven by dequeuing and executing Huey tasks."""
import threading

import pytest
import redis

from docora_admin import db
from docora_admin.huey_app import huey
from docora_admin.services.retries import bulk_progress, bulk_runner
from tests.conftest import TEST_REDIS_URL


pytestmark = pytest.mark.usefixtures("empty_queue")


def queued_tasks():
    """Dequeue everything: [(task name, args)] in queue order."""
    tasks = []
    while (task := huey.dequeue()) is not None:
        tasks.append(task)
    return tasks


def run_queued_admin_tasks():
    """Execute queued bulk tasks; return the snapshot jobs they queued (not executed)."""
    snapshots = []
    for task in queued_tasks():
        if task.name == "snapshot":
            snapshots.append(task)
        else:
            huey.execute(task)
    return snapshots + [t for t in queued_tasks() if t.name == "snapshot"]


def set_chunk_size(operation_id, size):
    with db.connection() as conn:
        conn.execute("UPDATE bulk_operations SET chunk_size = %s WHERE id = %s",
                     (size, operation_id))


def failed_count():
    with db.connection() as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM app_repositories WHERE status = 'failed'").fetchone()["n"]


# --- single retry ---------------------------------------------------------------------------

def test_retry_one_resets_and_queues_snapshot(client, logged_in, seed):
    app_id, repo = seed.link(seed.app(), seed.repo(), retry_count=5)
    response = logged_in.post("/admin/api/retry", json={"app_id": app_id, "repository_id": repo})
    assert response.status_code == 200
    body = response.get_json()
    assert body["data"]["message"] == "Retry queued"
    assert body["data"]["job_id"]
    assert seed.link_status(app_id, repo) == {"status": "pending_snapshot", "retry_count": 0,
                                              "last_error": None}
    [task] = queued_tasks()
    assert task.name == "snapshot" and task.id == body["data"]["job_id"]
    assert task.args == (app_id, repo, None, 1)  # the link's first job generation


def test_retry_one_accepts_a_form(client, logged_in, seed):
    app_id, repo = seed.link(seed.app(), seed.repo())
    response = logged_in.post("/admin/api/retry", data={"app_id": app_id, "repository_id": repo})
    assert response.status_code == 200


@pytest.mark.parametrize("body", [{}, {"app_id": "app_x"}, {"app_id": "", "repository_id": "r"},
                                  {"app_id": 5, "repository_id": ["x"]},
                                  {"app_id": "a" * 200, "repository_id": "r"}])
def test_retry_one_requires_ids(client, logged_in, body):
    response = logged_in.post("/admin/api/retry", json=body)
    assert response.status_code == 400
    assert response.get_json() == {"error": "app_id and repository_id are required"}


def test_retry_one_malformed_json_is_400(client, logged_in):
    for data in ("{oops", "[1, 2]", "null"):
        response = logged_in.post("/admin/api/retry", data=data, content_type="application/json")
        assert response.status_code == 400
        assert "error" in response.get_json()


def test_retry_one_unknown_and_not_failed(client, logged_in, seed):
    response = logged_in.post("/admin/api/retry",
                              json={"app_id": "app_nope", "repository_id": "repo_nope"})
    assert response.status_code == 404
    assert response.get_json() == {"error": "App-repository link not found"}
    app_id, repo = seed.link(seed.app(), seed.repo(), status="synced")
    response = logged_in.post("/admin/api/retry", json={"app_id": app_id, "repository_id": repo})
    assert response.status_code == 409
    assert response.get_json() == {"error": "Only failed entries can be retried"}
    assert queued_tasks() == []


# --- bulk retry -----------------------------------------------------------------------------

def test_retry_all_runs_in_background_and_counts(client, logged_in, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    seed.failed_links(acme, 7)
    seed.failed_links(globex, 5)
    seed.link(acme, seed.repo(), status="synced")
    response = logged_in.post("/admin/api/retry/all")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["message"] == "Bulk retry started" and data["total"] == 12
    operation_id = data["operation_id"]
    assert bulk_progress.is_valid_operation_id(operation_id)
    # Nothing was reset inside the request.
    assert failed_count() == 12
    raw = redis.Redis.from_url(TEST_REDIS_URL).hgetall(f"docora:bulk:{operation_id}")
    assert raw[b"total"] == b"12" and raw[b"completed"] == b"0" and raw[b"cancelled"] == b"false"
    assert 3500 < redis.Redis.from_url(TEST_REDIS_URL).ttl(f"docora:bulk:{operation_id}") <= 3600

    set_chunk_size(operation_id, 5)
    snapshots = run_queued_admin_tasks()
    assert failed_count() == 0
    assert sorted(t.args[2] for t in snapshots) == [operation_id] * 12
    assert len({t.args[:2] for t in snapshots}) == 12

    progress = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert progress["operation_id"] == operation_id
    assert (progress["total"], progress["completed"], progress["succeeded"], progress["failed"],
            progress["skipped"], progress["cancelled"]) == (12, 12, 12, 0, 0, False)
    assert progress["status"] == "completed"


def test_retry_app_only_touches_that_app(client, logged_in, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    seed.failed_links(acme, 3)
    seed.failed_links(globex, 4)
    response = logged_in.post(f"/admin/api/retry/app/{globex}")
    assert response.status_code == 200
    assert response.get_json()["data"]["total"] == 4
    run_queued_admin_tasks()
    assert failed_count() == 3


def test_bulk_not_found_messages(client, logged_in, seed):
    response = logged_in.post("/admin/api/retry/all")
    assert (response.status_code, response.get_json()) == (
        404, {"error": "No failed notifications found"})
    app_id = seed.app()
    response = logged_in.post(f"/admin/api/retry/app/{app_id}")
    assert (response.status_code, response.get_json()) == (
        404, {"error": "No failed notifications for this app"})
    response = logged_in.post("/admin/api/retry/app/" + "x" * 300)
    assert response.status_code == 404
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM bulk_operations").fetchone()["n"] == 0


def test_second_bulk_in_same_scope_is_409_with_running_id(client, logged_in, seed):
    app_id = seed.app()
    seed.failed_links(app_id, 3)
    first = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    again = logged_in.post("/admin/api/retry/all")
    assert again.status_code == 409
    assert again.get_json()["operation_id"] == first
    assert again.get_json()["error"]
    # Another scope is free.
    assert logged_in.post(f"/admin/api/retry/app/{app_id}").status_code == 200


def test_rows_that_left_failed_are_skipped(client, logged_in, seed):
    app_id = seed.app()
    links = seed.failed_links(app_id, 6)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    # Two are retried one by one before the bulk task reaches them.
    for app, repo in links[:2]:
        assert logged_in.post("/admin/api/retry",
                              json={"app_id": app, "repository_id": repo}).status_code == 200
    run_queued_admin_tasks()
    data = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert (data["completed"], data["succeeded"], data["skipped"]) == (6, 4, 2)


def test_cancel_after_chunks_leaves_the_rest_failed(client, logged_in, seed):
    app_id = seed.app()
    seed.failed_links(app_id, 10)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    set_chunk_size(operation_id, 3)
    assert bulk_runner.run_one_chunk(operation_id) == 3
    assert bulk_runner.run_one_chunk(operation_id) == 3
    response = logged_in.post(f"/admin/api/retry/cancel/{operation_id}")
    assert response.status_code == 200
    assert response.get_json() == {"data": {"message": "Cancellation requested"}}
    run_queued_admin_tasks()
    assert failed_count() == 4
    data = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert data["status"] == "cancelled" and data["cancelled"] is True
    assert (data["completed"], data["succeeded"]) == (6, 6)
    again = logged_in.post(f"/admin/api/retry/cancel/{operation_id}")
    assert again.status_code == 200  # DOCORA_CONTRACT.md §2: the original answers 200
    assert again.get_json() == {"data": {
        "message": "Cancellation requested", "changed": False, "operation_status": "cancelled",
        "detail": "Operation already cancelled"}}


def test_a_cancel_flagged_only_in_redis_stops_the_task(client, logged_in, seed):
    seed.failed_links(seed.app(), 10)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    set_chunk_size(operation_id, 4)
    assert bulk_runner.run_one_chunk(operation_id) == 4
    assert bulk_progress.cancel_progress(operation_id)  # the hash alone, not the database
    run_queued_admin_tasks()
    assert failed_count() == 6
    data = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert (data["status"], data["completed"]) == ("cancelled", 4)


def test_two_runners_at_once_reset_each_row_exactly_once(client, logged_in, seed):
    links = seed.failed_links(seed.app(), 60)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    set_chunk_size(operation_id, 3)
    queued_tasks()  # the runners below stand in for the queued task
    barrier = threading.Barrier(2)
    errors = []

    def runner():
        barrier.wait()
        try:
            bulk_runner.run_bulk_retry(operation_id)
        except Exception as exc:  # a thread's exception would otherwise only be printed
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads) and errors == []
    jobs = [task.args[:2] for task in queued_tasks() if task.name == "snapshot"]
    assert sorted(jobs) == sorted(links)  # one job per row: none twice, none missing
    assert failed_count() == 0
    data = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert (data["status"], data["completed"], data["succeeded"], data["skipped"]) == (
        "completed", 60, 60, 0)


def test_progress_falls_back_to_database_after_expiry(client, logged_in, seed):
    seed.failed_links(seed.app(), 2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    run_queued_admin_tasks()
    redis.Redis.from_url(TEST_REDIS_URL).delete(f"docora:bulk:{operation_id}")
    response = client.get(f"/admin/api/retry/progress/{operation_id}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["data"]["completed"] == 2


@pytest.mark.parametrize("operation_id", ["bulk_0000000000000000", "nope", "bulk_" + "z" * 16,
                                          "bulk_%27%3B--"])
def test_unknown_or_malformed_ids_are_404_and_create_nothing(client, logged_in, operation_id):
    progress = client.get(f"/admin/api/retry/progress/{operation_id}")
    assert (progress.status_code, progress.get_json()) == (
        404, {"error": "Operation not found or expired"})
    cancel = logged_in.post(f"/admin/api/retry/cancel/{operation_id}")
    assert cancel.status_code == 404
    assert redis.Redis.from_url(TEST_REDIS_URL).keys("docora:bulk:*") == []


def test_estimate_and_history(client, logged_in, seed):
    acme = seed.app()
    seed.failed_links(acme, 4)
    seed.failed_links(seed.app(), 1)
    assert client.get("/admin/api/retry/estimate").get_json() == {"data": {"total": 5}}
    assert client.get(f"/admin/api/retry/estimate?app_id={acme}").get_json() == {
        "data": {"total": 4}}
    first = logged_in.post(f"/admin/api/retry/app/{acme}").get_json()["data"]["operation_id"]
    run_queued_admin_tasks()
    second = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    history = client.get("/admin/api/retry/operations").get_json()["data"]
    assert [op["operation_id"] for op in history] == [second, first]
    assert history[1]["status"] == "completed" and history[1]["requested_by"] == "admin"
    assert history[1]["scope"] == "app" and history[1]["app_id"] == acme


def test_twenty_concurrent_retry_all_create_one_operation(app, client, logged_in, seed):
    seed.failed_links(seed.app(), 5)
    cookie = client.get_cookie("docora_admin_session").value
    statuses = []

    def hit():
        other = app.test_client()
        other.set_cookie("docora_admin_session", cookie)
        statuses.append(other.post("/admin/api/retry/all",
                                   headers={"X-CSRFToken": logged_in.csrf_token}).status_code)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 19
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM bulk_operations").fetchone()["n"] == 1


def test_cancel_of_an_ended_operation_changes_nothing(client, logged_in, seed):
    seed.failed_links(seed.app(), 2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    run_queued_admin_tasks()
    before = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    response = logged_in.post(f"/admin/api/retry/cancel/{operation_id}")
    assert (response.status_code, response.get_json()) == (200, {"data": {
        "message": "Cancellation requested", "changed": False, "operation_status": "completed",
        "detail": "Operation already completed"}})
    after = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert after == before and after["cancelled"] is False
    with db.connection() as conn:
        row = conn.execute("SELECT cancel_requested, status FROM bulk_operations WHERE id = %s",
                           (operation_id,)).fetchone()
    assert row == {"cancel_requested": False, "status": "completed"}


def test_busy_scope_is_409_even_when_nothing_is_left_failed(client, logged_in, seed):
    seed.failed_links(seed.app(), 2)
    first = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    bulk_runner.run_one_chunk(first)  # all targets reset, operation not finished yet
    again = logged_in.post("/admin/api/retry/all")
    assert again.status_code == 409 and again.get_json()["operation_id"] == first
