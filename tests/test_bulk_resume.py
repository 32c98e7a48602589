"""A real Huey consumer killed with SIGKILL in the middle of a bulk retry; a new one resumes it."""
import time

import redis

from docora_admin import db
from docora_admin.huey_app import huey
from docora_admin.services.retries import bulk_progress
from tests.conftest import TEST_REDIS_URL
from tests.processes import start_consumer, wait_for

TARGETS = 1500


def _operation(operation_id):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM bulk_operations WHERE id = %s",
                            (operation_id,)).fetchone()


def _seed_failed(seed, count):
    app_id = seed.app("Resume App")
    with db.connection() as conn:
        # One statement instead of thousands of factory calls; URLs point nowhere, so the
        # snapshot jobs the consumer runs fail fast without touching the network.
        conn.execute("""
            INSERT INTO repositories (repository_id, github_url, owner, name)
            SELECT 'repo_resume_' || g, 'file:///nonexistent/resume-' || g, 'resume', 'r' || g
            FROM generate_series(1, %s) g
        """, (count,))
        conn.execute("""
            INSERT INTO app_repositories (app_id, repository_id, status, last_error, retry_count,
                                          updated_at)
            SELECT %s, 'repo_resume_' || g, 'failed', 'POST /create → HTTP 500', 5,
                   now() - make_interval(secs => g)
            FROM generate_series(1, %s) g
        """, (app_id, count))
    return app_id


def test_sigkill_mid_bulk_retry_resumes_and_resets_each_row_once(tmp_path, client, logged_in,
                                                                  seed):
    huey.flush()
    _seed_failed(seed, TARGETS)
    with db.connection() as conn:
        # Test-only audit of every failed → pending_snapshot transition.
        conn.execute("DROP TABLE IF EXISTS reset_audit")
        conn.execute("CREATE TABLE reset_audit (link_id uuid NOT NULL)")
        conn.execute("""
            CREATE OR REPLACE FUNCTION audit_reset() RETURNS trigger AS $$
            BEGIN INSERT INTO reset_audit VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql""")
        conn.execute("""
            CREATE TRIGGER audit_reset AFTER UPDATE OF status ON app_repositories FOR EACH ROW
            WHEN (OLD.status = 'failed' AND NEW.status = 'pending_snapshot')
            EXECUTE FUNCTION audit_reset()""")
    consumers = []
    try:
        response = logged_in.post("/admin/api/retry/all")
        assert response.status_code == 200
        operation_id = response.get_json()["data"]["operation_id"]
        with db.connection() as conn:
            conn.execute("UPDATE bulk_operations SET chunk_size = 10 WHERE id = %s",
                         (operation_id,))

        first = start_consumer(tmp_path, name="first", BULK_CHUNK_DELAY_MS=20)
        consumers.append(first)
        wait_for(lambda: _operation(operation_id)["completed"] >= 200, 60,
                 message="the first consumer to get going")
        first.kill()
        killed = time.monotonic()
        killed_at = _operation(operation_id)
        assert killed_at["status"] == "running"
        assert 200 <= killed_at["completed"] < TARGETS

        second = start_consumer(tmp_path, name="second", BULK_STALL_SECONDS=2,
                                WATCHDOG_INTERVAL_SECONDS=1)
        consumers.append(second)
        # The watchdog resumes it within the stall window and a tick or two (it used to be a
        # once-a-minute periodic task).
        wait_for(lambda: _operation(operation_id)["completed"] > killed_at["completed"], 15,
                 interval=0.1, message="the resume")
        resumed_after = time.monotonic() - killed
        # Stall + a tick + the consumer's start-up, with room for a loaded machine; it used to be
        # stall + up to 60 s.
        assert resumed_after < 2 + 10, resumed_after
        done = wait_for(lambda: _operation(operation_id)["status"] == "completed"
                        and _operation(operation_id), 150, interval=0.5,
                        message="the resumed operation to complete")
        assert "resuming stalled bulk retry" in second.log()

        assert (done["total"], done["completed"], done["succeeded"], done["failed"],
                done["skipped"]) == (TARGETS, TARGETS, TARGETS, 0, 0)
        with db.connection() as conn:
            audit = conn.execute("SELECT count(*) AS n, count(DISTINCT link_id) AS d "
                                 "FROM reset_audit").fetchone()
            still_failed = conn.execute("SELECT count(*) AS n FROM app_repositories "
                                        "WHERE status = 'failed' AND retry_count = 5").fetchone()
        assert audit == {"n": TARGETS, "d": TARGETS}
        assert still_failed["n"] == 0

        live = bulk_progress.get_progress(operation_id)
        assert (live["total"], live["completed"], live["succeeded"]) == (TARGETS,) * 3
        api = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
        assert api["completed"] == done["completed"] and api["status"] == "completed"
        assert redis.Redis.from_url(TEST_REDIS_URL).ttl(f"docora:bulk:{operation_id}") > 0
    finally:
        for consumer in consumers:
            consumer.stop()
        with db.connection() as conn:
            conn.execute("DROP TRIGGER IF EXISTS audit_reset ON app_repositories")
            conn.execute("DROP TABLE IF EXISTS reset_audit")
        huey.flush()
