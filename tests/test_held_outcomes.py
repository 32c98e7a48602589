"""Held is an outcome of its own, and every screen names an operation's state alike (issue 22):
a bulk retry's links held by each reason (app paused, app circuit open, the app asked to wait,
the repository's git circuit open), with the button that releases them; a cancelled run named
cancelled while its deliveries end; delivery counters that never go backwards under a recount.
Real PostgreSQL, Redis, git and receivers; Huey tasks are executed in-process."""
import dataclasses
import re

from docora_admin import db, runtime
from docora_admin.repositories import bulk_operations as ops_repo
from docora_admin.services.retries import bulk_progress, bulk_runner, outcomes
from tests.accounts_helpers import client_as
from tests.test_delivery_control import THRESHOLD, _bulk_tasks_only, control_settings  # noqa: F401
from tests.test_outcomes import linked, receivers, repo, run_queue, run_scheduled  # noqa: F401

HX = {"HX-Request": "true"}


def _progress(client, operation_id):
    response = client.get(f"/admin/api/retry/progress/{operation_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]


def _panel(client, operation_id):
    return client.get(f"/admin/api/retry/progress/{operation_id}", headers=HX).get_data(
        as_text=True)


def _history_row(client, operation_id):
    html = client.get("/admin/operations").get_data(as_text=True)
    match = re.search(rf'<tr id="op-{operation_id}".*?</tr>', html, re.S)
    assert match, html
    return match.group(0)


def _adds_up(data):
    out = data["outcome"]
    assert out["delivered"] + out["failed_again"] + out["in_progress"] + out["held"] + \
        out["gone"] == data["succeeded"], data


def _state_everywhere(client, operation_id):
    """The operation's state word as the JSON, the panel, History and its page say it."""
    data = _progress(client, operation_id)
    panel = _panel(client, operation_id)
    row = _history_row(client, operation_id)
    page = client.get(f"/admin/operations/{operation_id}").get_data(as_text=True)
    seen = {re.search(r'data-op-state="([a-z_]+)"', panel).group(1),
            re.search(r'data-op-state="([a-z_]+)"', row).group(1),
            re.search(r'<h1>.*?data-state="([a-z_]+)"', page, re.S).group(1)}
    assert seen == {data["state"]}, (seen, data["state"])
    assert data["state_label"] in panel and data["state_label"] in row
    return data, panel


def test_links_held_by_an_open_circuit_show_held_with_the_probe_and_release(
        client, logged_in, seed, repo, receivers):
    receiver = receivers(500)
    app_id, _ = linked(seed, receiver, repo, count=THRESHOLD + 3, name="Down App")
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    run_queue()
    outcomes.settle_all()
    data, panel = _state_everywhere(client, operation_id)
    _adds_up(data)
    assert data["state"] == "held" and data["outcome"]["held"] == THRESHOLD + 3
    assert data["outcome"]["in_progress"] == 0
    assert data["held"]["by_reason"]["app_circuit_open"] == THRESHOLD + 3
    [app] = data["held"]["apps"]
    assert (app["app_id"], app["reason"], app["links"]) == (app_id, "app_circuit_open",
                                                           THRESHOLD + 3)
    assert app["until"]  # the next probe
    assert "next probe at" in panel and f'id="held-close-{app_id}"' in panel
    assert "Close circuit and retry" in panel and "Waiting for deliveries" not in panel
    assert "bulk-dismiss-button" not in panel  # nothing is settled: no "Done"
    assert "‖ Held" in _history_row(client, operation_id)

    # The release button: the next poll shows it, without waiting for the recount.
    receiver.status = 200
    assert logged_in.post(f"/admin/api/apps/{app_id}/circuit/close", headers=HX).status_code == 200
    data = _progress(client, operation_id)
    assert (data["state"], data["outcome"]["held"]) == ("delivering", 0)
    assert data["outcome"]["in_progress"] == THRESHOLD + 3


def test_a_viewer_sees_held_links_without_release_buttons(app, client, logged_in, seed, repo,
                                                         receivers):
    receiver = receivers(500)
    linked(seed, receiver, repo, count=THRESHOLD + 1)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    run_queue()
    outcomes.settle_all()
    viewer, _ = client_as(app, "viewer")
    panel = viewer._client.get(f"/admin/api/retry/progress/{operation_id}", headers=HX).get_data(
        as_text=True)
    assert "held</strong>" in panel and "Close circuit and retry" not in panel


def test_links_of_a_paused_app_are_held_until_resumed(client, logged_in, seed, repo,
                                                       receivers):
    receiver = receivers(200)
    app_id, _ = linked(seed, receiver, repo, count=3)
    logged_in.post(f"/admin/api/apps/{app_id}/pause")
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    run_queue()
    outcomes.settle_all()
    data, panel = _state_everywhere(client, operation_id)
    assert (data["state"], data["outcome"]["held"]) == ("held", 3)
    assert data["held"]["by_reason"] == {"app_paused": 3, "app_circuit_open": 0,
                                         "app_waiting": 0, "repository_circuit_open": 0}
    assert data["held"]["apps"][0]["until"] is None
    assert "deliveries to the app are paused" in panel and "Resume app" in panel

    assert logged_in.post(f"/admin/api/apps/{app_id}/resume").status_code == 200
    assert _progress(client, operation_id)["outcome"]["held"] == 0
    run_queue()
    outcomes.settle_all()
    data, _ = _state_everywhere(client, operation_id)
    assert (data["state"], data["outcome"]["delivered"]) == ("delivered", 3)
    assert data["held"]["links"] == 0 and len(receiver.arrivals) > 0


def test_links_of_an_app_that_asked_to_wait_are_held_until_then(client, logged_in, seed, repo,
                                                                 receivers):
    receiver = receivers(429)
    receiver.retry_after = 120
    linked(seed, receiver, repo, count=3)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    run_queue()
    outcomes.settle_all()
    data, panel = _state_everywhere(client, operation_id)
    assert data["held"]["by_reason"]["app_waiting"] == 3 and data["state"] == "held"
    assert "the app asked to wait until" in panel
    assert "Close circuit and retry" not in panel and "Resume app" not in panel


def test_links_behind_an_open_repository_circuit_are_held(client, logged_in, seed):
    app_id = seed.app("Git Blocked App")
    seed.failed_links(app_id, 2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    _bulk_tasks_only()  # reset and queued; then git keeps failing for their repositories
    with db.connection() as conn:
        conn.execute("""
            UPDATE repositories SET consecutive_failures = 6, circuit_opened_at = now(),
                   circuit_open_until = now() + interval '10 minutes'
            WHERE repository_id IN (SELECT repository_id FROM app_repositories
                                    WHERE app_id = %s)""", (app_id,))
    outcomes.settle_all()
    data, panel = _state_everywhere(client, operation_id)
    assert data["held"]["by_reason"]["repository_circuit_open"] == 2
    assert data["state"] == "held" and "the repository&#39;s git circuit is open" in panel


def test_a_cancelled_run_is_cancelled_everywhere_while_its_deliveries_end(
        client, logged_in, seed, monkeypatch):
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(runtime.settings(), bulk_chunk_size=2))
    app_id = seed.app("Cancelled App")
    seed.failed_links(app_id, 5)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    bulk_runner.run_one_chunk(operation_id)
    assert logged_in.post(f"/admin/api/retry/cancel/{operation_id}").status_code == 200
    _bulk_tasks_only()
    outcomes.settle_all()
    data, panel = _state_everywhere(client, operation_id)
    assert (data["state"], data["phase"], data["outcome"]["in_progress"]) == (
        "cancelled", "delivering", 2)
    assert "■ Cancelled" in _history_row(client, operation_id)
    assert "Waiting for deliveries" not in _history_row(client, operation_id)
    assert "2 of the deliveries it queued not ended yet" in panel
    assert "bulk-dismiss-button" not in panel and "load delay:2s" in panel


def test_delivery_counters_never_go_backwards_under_a_rewrite_or_a_recount(
        client, logged_in, seed, repo, receivers):
    receiver = receivers(200)
    linked(seed, receiver, repo, count=4)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    run_queue()  # delivered: the live hash counted 4, the row's last recount says 0
    with db.connection() as conn:
        row = ops_repo.get_operation(conn, operation_id)
    assert row["delivered"] == 0 and bulk_progress.get_progress(operation_id)["delivered"] == 4
    seen = [_progress(client, operation_id)["outcome"]["delivered"]]
    bulk_progress.write_from_record(row)  # an end or a resume rewrites the hash from the row
    seen.append(_progress(client, operation_id)["outcome"]["delivered"])
    bulk_progress.write_outcome(row)  # a recount that lags what the hash counted live
    seen.append(_progress(client, operation_id)["outcome"]["delivered"])
    outcomes.settle_all()
    seen.append(_progress(client, operation_id)["outcome"]["delivered"])
    assert seen == [4, 4, 4, 4]
    assert _progress(client, operation_id)["state"] == "delivered"


def test_the_overview_counts_held_links_apart_from_those_being_delivered(
        client, logged_in, seed, repo, receivers):
    receiver = receivers(200)
    app_id, _ = linked(seed, receiver, repo, count=3)
    logged_in.post(f"/admin/api/apps/{app_id}/pause")
    logged_in.post("/admin/api/retry/all")
    run_queue()
    html = client.get("/admin/").get_data(as_text=True)
    in_progress = re.search(r'id="stat-in-progress"><span class="stat-value">([\d,]+)', html)
    held = re.search(r'id="stat-held"><span class="stat-value">([\d,]+)', html)
    assert (in_progress.group(1), held.group(1)) == ("0", "3")
    data = client.get("/admin/api/overview").get_json()["data"]
    assert (data["links_in_progress"], data["links_held"]) == (3, 3)


def test_delivering_normally_only_once_the_last_attempt_was_delivered(
        client, logged_in, seed, repo, receivers):
    receiver = receivers(500)
    app_id, _ = linked(seed, receiver, repo, count=THRESHOLD + 1)

    def state_line():
        html = client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
        return re.search(r'<p id="app-delivery-state"[^>]*>(.*?)</p>', html, re.S).group(1)

    assert state_line() == "Delivering normally."  # never failed
    logged_in.post("/admin/api/retry/all")
    run_queue()
    logged_in.post(f"/admin/api/apps/{app_id}/circuit/close")  # by hand; the app still fails
    assert "the last attempt" in state_line() and "failed" in state_line()
    run_queue()  # the released links fail again, below the threshold
    line = state_line()
    assert "Not held, but failing" in line and "Delivering normally" not in line
    receiver.status = 200
    logged_in.post(f"/admin/api/apps/{app_id}/circuit/close")
    run_queue()
    run_scheduled()
    assert state_line() == "Delivering normally."
