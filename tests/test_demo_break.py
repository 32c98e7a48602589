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
