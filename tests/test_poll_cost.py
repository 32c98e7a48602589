"""What a poll of bulk progress costs (issue 25): while the operation's Redis hash lives, the
JSON and the panel come from the hash alone (its copy of the row, the live counters, the
reset's beat by Redis's clock) and the session check from Redis too, so a poll reads no
PostgreSQL; once the hash is gone, PostgreSQL answers the same. A copy of the row never
replaces a later one, whoever writes last."""
import redis

from docora_admin import db, sessions
from docora_admin.repositories import bulk_operations as ops_repo
from docora_admin.services.retries import bulk_progress
from tests.conftest import TEST_REDIS_URL
from tests.test_delivery_control import _bulk_tasks_only
from tests.test_outcomes import HX

# What may differ between two answers a moment apart.
MOVING = ("running_for", "stall")


def _poll(client, operation_id, headers=None):
    response = client.get(f"/admin/api/retry/progress/{operation_id}", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def _without_database(monkeypatch):
    def no_database(*args, **kwargs):
        raise AssertionError("a poll read PostgreSQL")
    monkeypatch.setattr(db, "connection", no_database)


def _same(one, other):
    return {k: v for k, v in one.items() if k not in MOVING} == {
        k: v for k, v in other.items() if k not in MOVING}


def test_polls_of_a_live_operation_read_no_postgresql(client, logged_in, seed, empty_queue,
                                                       monkeypatch):
    seed.failed_links(seed.app(name="Poll App"), 3)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    with monkeypatch.context() as patched:
        _without_database(patched)
        data = _poll(client, operation_id).get_json()["data"]
        panel = _poll(client, operation_id, HX).get_data(as_text=True)
    assert (data["status"], data["state"], data["total"], data["completed"]) == (
        "running", "running", 3, 0)
    assert data["requested_by"] and data["created_at"] and data["stall"]["stalled"] is False
    assert f'data-operation-id="{operation_id}"' in panel and 'data-op-state="running"' in panel

    _bulk_tasks_only()  # the reset runs: the hash is told of every change of the row
    with monkeypatch.context() as patched:
        _without_database(patched)
        live = _poll(client, operation_id).get_json()["data"]
        panel = _poll(client, operation_id, HX).get_data(as_text=True)
    assert (live["status"], live["succeeded"], live["phase"]) == ("completed", 3, "delivering")
    assert live["finished_at"] and live["outcome"]["in_progress"] == 3
    assert 'data-op-state="delivering"' in panel

    # Once the hash is gone, PostgreSQL answers, and says the same.
    redis.Redis.from_url(TEST_REDIS_URL).delete(f"docora:bulk:{operation_id}")
    assert _same(_poll(client, operation_id).get_json()["data"], live)


def test_a_stale_copy_of_the_row_never_replaces_a_later_one(app, seed, empty_queue, logged_in):
    seed.failed_links(seed.app(), 2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    with db.connection() as conn:
        before = ops_repo.get_operation(conn, operation_id)
        cancelled, _ = ops_repo.request_cancel(conn, operation_id)
    assert cancelled["revision"] > before["revision"]
    bulk_progress.set_status(operation_id, "cancelling", record=cancelled)
    bulk_progress.write_record(before)  # a slower process, writing what it read earlier
    bulk_progress.set_status(operation_id, "running", record=before)
    values, _ = bulk_progress.read_live(operation_id)
    assert values["record"]["cancel_requested"] is True and values["status"] == "cancelling"
    assert int(values["revision"]) == cancelled["revision"]


def test_an_unchanged_session_is_written_back_at_most_every_refresh_interval(
        client, logged_in, monkeypatch):
    store = redis.Redis.from_url(TEST_REDIS_URL)
    [key] = store.keys("docora:session:*")
    store.expire(key, 100)
    assert client.get("/admin/api/session").status_code == 200
    assert store.ttl(key) <= 100  # written at login, less than REFRESH_S ago: not again
    monkeypatch.setattr(sessions, "REFRESH_S", 0)
    response = client.get("/admin/api/session")
    assert response.status_code == 200 and "Set-Cookie" in response.headers
    assert store.ttl(key) > 3000  # its idle lifetime renewed, and its cookie
