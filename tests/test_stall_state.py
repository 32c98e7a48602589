"""A bulk operation whose worker stopped says so (issue 23): the progress JSON and the panel
tell it has stalled and since when (by Redis's clock: a poll reads only the live hash), and
once resumed, when and after what; the watchdog's resume records it."""
from datetime import datetime, timezone

import redis

from docora_admin import db, runtime
from docora_admin.services.retries import bulk_runner
from tests.conftest import TEST_REDIS_URL
from tests.test_outcomes import HX


def _progress(client, operation_id):
    return client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]


def test_a_stalled_operation_says_since_when_and_then_that_it_resumed(client, logged_in, seed,
                                                                      empty_queue):
    seed.failed_links(seed.app(), 3)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    stall = runtime.settings().bulk_stall_seconds
    fresh = _progress(client, operation_id)["stall"]
    assert fresh == {"stalled": False, "since": None, "seconds": None, "stalled_at": None,
                     "resumed_at": None, "resumes": 0}

    # Its worker died: no heartbeat for longer than the window, neither in the row (what the
    # watchdog goes by) nor in the live hash (what a poll reads, by Redis's clock).
    with db.connection() as conn:
        beat = conn.execute("""
            UPDATE bulk_operations SET heartbeat_at = now() - make_interval(secs => %s)
            WHERE id = %s RETURNING heartbeat_at""", (stall + 7, operation_id)).fetchone()
    store = redis.Redis.from_url(TEST_REDIS_URL)
    seconds, micros = store.time()
    last_beat = seconds + micros / 1e6 - stall - 7
    store.hset(f"docora:bulk:{operation_id}", "beat", f"{last_beat:.6f}")
    data = _progress(client, operation_id)
    assert data["state"] == "running" and data["stall"]["stalled"] is True
    assert data["stall"]["since"] == datetime.fromtimestamp(last_beat, timezone.utc).isoformat()
    assert stall + 7 <= data["stall"]["seconds"] <= stall + 60
    panel = client.get(f"/admin/api/retry/progress/{operation_id}",
                       headers=HX).get_data(as_text=True)
    assert 'id="bulk-stalled"' in panel and "No progress since" in panel

    assert bulk_runner.resume_stalled(stall) == [operation_id]
    data = _progress(client, operation_id)
    assert data["stall"]["stalled"] is False and data["stall"]["resumes"] == 1
    assert data["stall"]["stalled_at"] == beat["heartbeat_at"].isoformat()
    assert data["stall"]["resumed_at"] is not None
    panel = client.get(f"/admin/api/retry/progress/{operation_id}",
                       headers=HX).get_data(as_text=True)
    assert 'id="bulk-stalled"' not in panel and 'id="bulk-resumed"' in panel
    assert bulk_runner.resume_stalled(stall) == []  # once per stall
