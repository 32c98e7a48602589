"""Dismiss and undismiss (POST /admin/api/links/dismiss | undismiss), and "Retry this group": a
bulk retry scoped to a cause, run through the real bulk machinery (Huey tasks dequeued and
executed)."""
import pytest

from docora_admin import db
from docora_admin.huey_app import huey
from tests.accounts_helpers import client_as

pytestmark = pytest.mark.usefixtures("empty_queue")

GONE = "git: repository not found"


def run_bulk_tasks():
    """Execute the queued bulk tasks; return the (app_id, repository_id) of the snapshot jobs
    they queued (not executed)."""
    snapshots = []
    # pending_count first: a dequeue from an empty queue blocks for its read timeout.
    while huey.pending_count():
        task = huey.dequeue()
        if task.name == "snapshot":
            snapshots.append(tuple(task.args[:2]))
        else:
            huey.execute(task)
    return snapshots


def _statuses():
    with db.connection() as conn:
        return {(r["app_id"], r["repository_id"]): (r["status"], r["dismissed_at"] is not None)
                for r in conn.execute("SELECT app_id, repository_id, status, dismissed_at "
                                      "FROM app_repositories").fetchall()}


def _audit(action):
    with db.connection() as conn:
        return conn.execute("SELECT actor, target, details FROM audit_events WHERE action = %s "
                            "ORDER BY id", (action,)).fetchall()


def _counts(client, app_id=None):
    """What every number next to a retry button says, and the failed list's total."""
    args = {"app_id": app_id} if app_id else {}
    return (client.get("/admin/api/retry/estimate", query_string=args).get_json()["data"]["total"],
            client.get("/admin/api/notifications/failed",
                       query_string=args).get_json()["data"]["pagination"]["total"])


def test_dismissed_links_are_skipped_by_retry_all_and_counted_apart(client, logged_in, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    gone = seed.failed_links(acme, 2, last_error=GONE)
    flaky = seed.failed_links(acme, 3, last_error="timeout after 5 s")
    other = seed.failed_links(globex, 1, last_error=GONE)
    response = logged_in.post("/admin/api/links/dismiss", json={
        "app_id": gone[0][0], "repository_id": gone[0][1], "reason": "deleted upstream"})
    assert response.status_code == 200
    assert response.get_json()["data"] == {"message": "Dismissed 1", "dismissed": 1,
                                           "cause": GONE}
    assert _counts(client) == (5, 5) and _counts(client, acme) == (4, 4)
    overview = client.get("/admin/api/overview").get_json()["data"]
    assert overview["failed_notifications"] == 5 and overview["dismissed_notifications"] == 1
    assert overview["links_by_status"]["failed"] == 6  # Docora's statuses, unchanged
    dismissed = client.get("/admin/api/notifications/dismissed").get_json()["data"]
    assert dismissed["pagination"]["total"] == 1
    [row] = dismissed["data"]
    assert (row["repository_id"], row["status"], row["cause"]) == (gone[0][1], "failed", GONE)
    assert row["dismissed"]["by"] == "admin" and row["dismissed"]["reason"] == "deleted upstream"
    link = client.get(f"/admin/api/links/{gone[0][0]}/{gone[0][1]}").get_json()["data"]
    assert link["dismissed"]["reason"] == "deleted upstream" and link["cause"] == GONE

    # Retry app, then retry all: neither touches the dismissed link.
    started = logged_in.post(f"/admin/api/retry/app/{acme}").get_json()["data"]
    assert started["total"] == 4
    assert sorted(run_bulk_tasks()) == sorted([gone[1]] + flaky)
    started = logged_in.post("/admin/api/retry/all").get_json()["data"]
    assert started["total"] == 1
    assert run_bulk_tasks() == other
    assert _statuses()[gone[0]] == ("failed", True)
    [event] = _audit("link.dismiss")
    assert event["actor"] == "admin" and event["target"] == f"{gone[0][0]}/{gone[0][1]}"
    assert event["details"]["reason"] == "deleted upstream" and event["details"]["links"] == 1

    # Undismissed, it is failed again everywhere.
    response = logged_in.post("/admin/api/links/undismiss", json={
        "app_id": gone[0][0], "repository_id": gone[0][1]})
    assert response.status_code == 200 and response.get_json()["data"]["undismissed"] == 1
    assert _statuses()[gone[0]] == ("failed", False)
    assert _counts(client, acme) == (1, 1)
    [event] = _audit("link.undismiss")
    assert event["details"]["dismiss_reason"] == "deleted upstream"


def test_dismiss_a_cause_and_undismiss_it(client, logged_in, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    seed.failed_links(acme, 2, last_error=GONE)
    seed.failed_links(globex, 2, last_error=GONE)
    seed.failed_links(acme, 1, last_error="timeout after 5 s")
    # Scoped to one app.
    response = logged_in.post("/admin/api/links/dismiss", json={
        "cause": GONE, "app_id": acme, "reason": "repos removed"})
    assert response.get_json()["data"]["dismissed"] == 2
    # A raw error text names its cause.
    response = logged_in.post("/admin/api/links/dismiss", json={
        "cause": GONE, "reason": "repos removed"})
    assert response.get_json()["data"]["dismissed"] == 2
    causes = client.get("/admin/api/notifications/causes").get_json()["data"]
    assert [(g["cause"], g["count"]) for g in causes] == [("timeout after N s", 1)]
    assert _counts(client) == (1, 1)
    event = _audit("link.dismiss")[-1]
    assert event["target"] == f"cause:{GONE}" and event["details"]["links"] == 2
    response = logged_in.post("/admin/api/links/undismiss", json={"cause": GONE})
    assert response.get_json()["data"]["undismissed"] == 4
    assert _counts(client) == (5, 5)
    response = logged_in.post("/admin/api/links/undismiss", json={"cause": GONE})
    assert response.status_code == 404
    assert response.get_json() == {"error": "No dismissed notifications with this cause"}


@pytest.mark.parametrize("path, body, status, message", [
    ("dismiss", {"app_id": "a", "repository_id": "r"}, 400, "reason is required"),
    ("dismiss", {"reason": "x"}, 400, "Send {app_id, repository_id} of one link"),
    ("dismiss", {"cause": GONE, "repository_id": "r", "reason": "x"}, 400, "Send either"),
    ("dismiss", {"cause": 5, "reason": "x"}, 400, "cause must be"),
    ("dismiss", {"cause": GONE, "reason": "x" * 501}, 400, "reason must be at most"),
    ("dismiss", {"cause": GONE, "reason": ["x"]}, 400, "reason must be text"),
    ("dismiss", {"cause": GONE, "reason": "x", "status": "ok"}, 400, "Unknown field 'status'"),
    ("dismiss", ["not", "an", "object"], 400, "Request body must be a JSON object"),
    ("dismiss", {"app_id": "app_x", "repository_id": "repo_y", "reason": "x"}, 404,
     "App-repository link not found"),
    ("dismiss", {"cause": "never seen", "reason": "x"}, 404,
     "No failed notifications with this cause"),
    ("undismiss", {"app_id": "a" * 51, "repository_id": "r"}, 400, "Send {app_id"),
])
def test_bad_input_is_a_one_line_error_and_changes_nothing(client, logged_in, seed, path, body,
                                                           status, message):
    acme = seed.app("Acme")
    seed.failed_links(acme, 1, last_error=GONE)
    before = _statuses()
    response = logged_in.post(f"/admin/api/links/{path}", json=body)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error.startswith(message) and "\n" not in error
    assert _statuses() == before and _audit("link.dismiss") == []


def test_malformed_json_is_400(logged_in):
    response = logged_in.post("/admin/api/links/dismiss", data="{nope",
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "error" in response.get_json()


def test_conflicts(client, logged_in, seed):
    acme = seed.app("Acme")
    [link] = seed.failed_links(acme, 1, last_error=GONE)
    synced = seed.link(acme, seed.repo(), status="synced")
    ids = {"app_id": link[0], "repository_id": link[1]}
    assert logged_in.post("/admin/api/links/undismiss", json=ids).status_code == 409
    assert logged_in.post("/admin/api/links/dismiss", json={**ids, "reason": "x"}).status_code \
        == 200
    again = logged_in.post("/admin/api/links/dismiss", json={**ids, "reason": "x"})
    assert again.status_code == 409
    assert again.get_json() == {"error": "This link is already dismissed"}
    not_failed = logged_in.post("/admin/api/links/dismiss", json={
        "app_id": synced[0], "repository_id": synced[1], "reason": "x"})
    assert not_failed.get_json() == {"error": "Only failed links can be dismissed"}
    # A single retry still works, and ends the dismissal.
    assert logged_in.post("/admin/api/retry", json=ids).status_code == 200
    assert _statuses()[link] == ("pending_snapshot", False)


def test_a_viewer_cannot_dismiss(app, seed):
    acme = seed.app("Acme")
    [link] = seed.failed_links(acme, 1, last_error=GONE)
    viewer, _ = client_as(app, "viewer")
    for path in ("dismiss", "undismiss"):
        response = viewer.post(f"/admin/api/links/{path}", json={
            "app_id": link[0], "repository_id": link[1], "reason": "x"})
        assert response.status_code == 403
    assert _statuses()[link] == ("failed", False)
    # Reading is allowed.
    assert viewer._client.get("/admin/api/notifications/causes").status_code == 200
    assert viewer._client.get("/admin/dismissed").status_code == 200


def test_retry_a_group_through_a_bulk_run(client, logged_in, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    timeouts = (seed.failed_links(acme, 3, last_error="timeout after 5 s")
                + seed.failed_links(globex, 2, last_error="timeout after 30 s"))
    gone = seed.failed_links(acme, 2, last_error=GONE)
    dismissed = seed.failed_links(globex, 1, last_error="timeout after 9 s")[0]
    logged_in.post("/admin/api/links/dismiss", json={
        "app_id": dismissed[0], "repository_id": dismissed[1], "reason": "known"})
    cause = "timeout after N s"
    estimate = client.get("/admin/api/retry/estimate", query_string={"cause": cause})
    assert estimate.get_json()["data"]["total"] == 5
    response = logged_in.post("/admin/api/retry/selection", json={"cause": cause})
    assert response.status_code == 200
    started = response.get_json()["data"]
    assert started["total"] == 5
    # While it runs, the causes page shows its panel; its page names the cause.
    page = client.get("/admin/causes")
    assert page.status_code == 200 and started["operation_id"] in page.get_data(as_text=True)
    detail = client.get(f"/admin/operations/{started['operation_id']}").get_data(as_text=True)
    assert "with cause “timeout after N s”" in detail
    with db.connection() as conn:
        conn.execute("UPDATE bulk_operations SET chunk_size = 2 WHERE id = %s",
                     (started["operation_id"],))
    assert sorted(run_bulk_tasks()) == sorted(timeouts)
    progress = client.get(f"/admin/api/retry/progress/{started['operation_id']}")
    data = progress.get_json()["data"]
    assert (data["status"], data["total"], data["succeeded"], data["skipped"]) == (
        "completed", 5, 5, 0)
    assert data["filter"] == {"cause": cause}
    statuses = _statuses()
    assert all(statuses[link] == ("failed", False) for link in gone)
    assert statuses[dismissed] == ("failed", True)
    causes = client.get("/admin/api/notifications/causes").get_json()["data"]
    assert [(g["cause"], g["count"]) for g in causes] == [(GONE, 2)]


def test_htmx_dismiss_on_the_link_page_and_the_dismissed_view(client, logged_in, seed):
    acme = seed.app("Acme")
    [link] = seed.failed_links(acme, 1, last_error="<b>gone</b>")
    page = client.get(f"/admin/apps/{link[0]}/links/{link[1]}").get_data(as_text=True)
    assert 'id="link-dismiss-form"' in page and "&lt;b&gt;gone&lt;/b&gt;" in page
    response = logged_in.post("/admin/api/links/dismiss",
                              data={"app_id": link[0], "repository_id": link[1],
                                    "reason": "<i>never</i>"},
                              headers={"HX-Request": "true", "HX-Target": "link-dismissal"})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "counts-changed"
    html = response.get_data(as_text=True)
    assert 'data-dismissed="true"' in html and "&lt;i&gt;never&lt;/i&gt;" in html
    listed = client.get("/admin/dismissed").get_data(as_text=True)
    assert "&lt;i&gt;never&lt;/i&gt;" in listed and "Undismiss" in listed
    error = logged_in.post("/admin/api/links/dismiss",
                           data={"app_id": link[0], "repository_id": link[1], "reason": "x"},
                           headers={"HX-Request": "true", "HX-Target": "link-dismissal"})
    assert error.status_code == 409 and error.headers["HX-Retarget"] == "#link-dismissal-error"


def test_a_form_post_needs_its_csrf_token(client, logged_in, seed):
    acme = seed.app("Acme")
    [link] = seed.failed_links(acme, 1, last_error=GONE)
    response = client.post("/admin/api/links/dismiss", data={
        "app_id": link[0], "repository_id": link[1], "reason": "x"})
    assert response.status_code in (400, 403) and "error" in response.get_json()
    assert _statuses()[link] == ("failed", False)


def test_the_failed_list_filtered_by_a_cause(client, logged_in, seed):
    acme = seed.app("Acme")
    seed.failed_links(acme, 2, last_error="timeout after 5 s")
    seed.failed_links(acme, 1, last_error=GONE)
    html = client.get("/admin/notifications", query_string={"cause": "timeout after N s"}
                      ).get_data(as_text=True)
    assert "Cause: “timeout after N s”" in html and html.count('class="failed-row"') == 2
    assert 'name="cause" value="timeout after N s"' in html  # kept by the filter form


def test_the_app_page_and_its_json_mark_a_dismissed_link(client, logged_in, seed):
    """Its Failed badges count what "Retry failed for this app" acts on: a dismissed link is
    listed apart, after the failed ones, and says who dismissed it."""
    acme = seed.app("Acme")
    gone, *flaky = seed.failed_links(acme, 3, last_error=GONE)
    logged_in.post("/admin/api/links/dismiss", json={
        "app_id": gone[0], "repository_id": gone[1], "reason": "deleted <upstream>"})
    page = client.get(f"/admin/apps/{acme}").get_data(as_text=True)
    rows = page.split('<tbody>')[1].split('</tbody>')[0].split('<tr ')[1:]
    assert [("badge-dismissed" in r, "badge-failed" in r) for r in rows] == [
        (False, True), (False, True), (True, False)]
    assert f'id="link-{gone[0]}-{gone[1]}"' in rows[2]
    assert "Dismissed by admin" in rows[2] and "bulk retries skip it" in rows[2]
    assert _counts(client, acme) == (2, 2)
    assert 'aria-label="Retry' in rows[2]  # one Retry still works, and ends the dismissal
    repositories = {r["repository_id"]: r for r in
                    client.get(f"/admin/api/apps/{acme}").get_json()["data"]["repositories"]}
    assert repositories[gone[1]]["status"] == "failed"  # Docora's status, unchanged
    assert repositories[gone[1]]["dismissed"]["by"] == "admin"
    assert repositories[gone[1]]["dismissed"]["reason"] == "deleted <upstream>"
    assert [repositories[r]["dismissed"] for _, r in flaky] == [None, None]
