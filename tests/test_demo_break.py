"""`flask --app app demo-break`: the demo's broken apps are broken again and deliver again, so
fix → retry all can be played again."""
import json

from docora_admin import db
from docora_admin.services.apps.demo_data import BROKEN_APPS


def test_demo_break_breaks_the_apps_and_redelivers_their_links(app, seed, empty_queue, tmp_path):
    broken = {name: seed.app(name=name) for name in BROKEN_APPS}
    healthy = seed.app(name="Healthy App")
    links = [seed.link(app_id, seed.repo(), status="synced") for app_id in broken.values()]
    seed.link(healthy, seed.repo(), status="synced")
    config = tmp_path / "receiver.json"
    config.write_text(json.dumps({app_id: {"key": "k", "name": name, "mode": "ok"}
                                  for name, app_id in {**broken, "Healthy App": healthy}.items()}))

    result = app.test_cli_runner().invoke(args=["demo-break", "--receiver-config", str(config)])
    assert result.exit_code == 0, result.output
    assert "2 app(s) broken again" in result.output

    modes = {entry["name"]: entry["mode"] for entry in json.loads(config.read_text()).values()}
    assert modes == {**BROKEN_APPS, "Healthy App": "ok"}
    assert [seed.link_status(*link)["status"] for link in links] == ["pending_snapshot"] * 2
    with db.connection() as conn:
        assert conn.execute("SELECT status FROM app_repositories WHERE app_id = %s",
                            (healthy,)).fetchone()["status"] == "synced"
    assert empty_queue.pending_count() == 2


def test_demo_break_without_a_live_demo_says_so(app, tmp_path):
    result = app.test_cli_runner().invoke(
        args=["demo-break", "--receiver-config", str(tmp_path / "missing.json")])
    assert result.exit_code != 0 and "not found" in result.output


def test_demo_break_closes_the_broken_apps_circuits(app, seed, empty_queue, tmp_path):
    """An earlier play's open circuit would hold the links (no attempt, no failure): demo-break
    starts a healthy episode, circuit closed and streak forgotten; an operator's pause stays."""
    broken = {name: seed.app(name=name) for name in BROKEN_APPS}
    for app_id in broken.values():
        seed.link(app_id, seed.repo(), status="failed")
    open_id, paused_id = broken.values()
    with db.connection() as conn:
        conn.execute("""
            INSERT INTO app_delivery_control (app_id, consecutive_failures, circuit_opened_at,
                                              probe_at, probe_failures, deferred_until,
                                              paused_at, paused_by)
            VALUES (%s, 80, now(), now() + interval '5 minutes', 3, now() + interval '1 hour',
                    NULL, NULL),
                   (%s, 12, NULL, NULL, 0, NULL, now(), 'alice')
        """, (open_id, paused_id))
    config = tmp_path / "receiver.json"
    config.write_text(json.dumps({app_id: {"key": "k", "name": name, "mode": "ok"}
                                  for name, app_id in broken.items()}))

    result = app.test_cli_runner().invoke(args=["demo-break", "--receiver-config", str(config)])
    assert result.exit_code == 0, result.output

    with db.connection() as conn:
        rows = {row["app_id"]: row for row in conn.execute("""
            SELECT app_id, consecutive_failures, circuit_opened_at, probe_at, probe_failures,
                   deferred_until, paused_by
            FROM app_delivery_control""").fetchall()}
    assert [(rows[app_id]["consecutive_failures"], rows[app_id]["circuit_opened_at"],
             rows[app_id]["probe_at"], rows[app_id]["probe_failures"],
             rows[app_id]["deferred_until"]) for app_id in (open_id, paused_id)] == [
        (0, None, None, 0, None)] * 2
    assert rows[paused_id]["paused_by"] == "alice"


def test_demo_data_queues_its_pending_links_itself(app, empty_queue):
    """A fresh demo's pending links get their jobs with the insert: the sweeper finds none lost
    (it used to start the demo with 'queued 79 link(s): their job was lost')."""
    from docora_admin.services.jobs import sweeper

    result = app.test_cli_runner().invoke(args=["demo-data", "--seed", "7"])
    assert result.exit_code == 0, result.output
    with db.connection() as conn:
        pending = conn.execute("SELECT count(*) AS n FROM app_repositories "
                               "WHERE status = 'pending_snapshot'").fetchone()["n"]
    assert pending > 0 and empty_queue.pending_count() == pending
    assert sweeper.requeue_lost_jobs() == 0
