"""Fragments for htmx on the same URLs as the JSON API, and the pages that hold them."""
import pytest

from tests.test_retry_api import run_queued_admin_tasks

HX = {"HX-Request": "true"}


pytestmark = pytest.mark.usefixtures("empty_queue")


def test_row_retry_answers_htmx_with_the_queued_row(client, logged_in, seed):
    app_id, repo = seed.link(seed.app(), seed.repo())
    response = logged_in.post("/admin/api/retry", data={"app_id": app_id, "repository_id": repo},
                              headers=HX)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "HX-Request" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    assert f'id="link-{app_id}-{repo}"' in html and 'data-state="queued"' in html


def test_row_retry_409_lands_in_the_rows_error_slot(client, logged_in, seed):
    app_id, repo = seed.link(seed.app(), seed.repo(), status="synced")
    response = logged_in.post("/admin/api/retry", data={"app_id": app_id, "repository_id": repo},
                              headers={**HX, "HX-Target": f"link-{app_id}-{repo}"})
    assert response.status_code == 409
    assert response.headers["HX-Retarget"] == f"#link-{app_id}-{repo}-error"
    assert "Only failed entries can be retried" in response.get_data(as_text=True)


def test_bulk_panel_states_poll_only_while_running(client, logged_in, seed):
    seed.failed_links(seed.app(), 3)
    confirm = client.get("/admin/api/retry/estimate", headers=HX).get_data(as_text=True)
    assert "Retry 3 failed notifications?" in confirm
    running = logged_in.post("/admin/api/retry/all", headers=HX)
    html = running.get_data(as_text=True)
    assert 'data-state="running"' in html and 'hx-trigger="load delay:1s"' in html
    assert 'role="progressbar"' in html and 'aria-valuenow="0"' in html
    assert "bulk-cancel-button" in html
    operation_id = html.split('data-operation-id="')[1].split('"')[0]
    run_queued_admin_tasks()
    done = client.get(f"/admin/api/retry/progress/{operation_id}", headers=HX)
    html = done.get_data(as_text=True)
    assert 'data-state="completed"' in html and "load delay:1s" not in html
    # Reset and queued, not delivered: the panel waits for the deliveries, polling slower.
    assert 'data-phase="delivering"' in html and 'hx-trigger="load delay:2s"' in html
    assert "Waiting for deliveries" in html and "✓" not in html
    assert "3 / 3 processed (3 queued, 0 skipped)" in html
    assert "Deliveries: 0 delivered, 0 failed again, 3 in progress" in html
    assert done.headers["HX-Trigger"] == "bulk-finished"
    # The next poll of the same phase does not announce it again.
    again = client.get(f"/admin/api/retry/progress/{operation_id}?seen=delivering", headers=HX)
    assert "HX-Trigger" not in again.headers
    # The same URL without HX-Request is JSON.
    assert client.get(f"/admin/api/retry/progress/{operation_id}").is_json


def test_cancel_fragment_shows_cancelling(client, logged_in, seed):
    seed.failed_links(seed.app(), 3)
    html = logged_in.post("/admin/api/retry/all", headers=HX).get_data(as_text=True)
    operation_id = html.split('data-operation-id="')[1].split('"')[0]
    cancelled = logged_in.post(f"/admin/api/retry/cancel/{operation_id}", headers=HX)
    assert 'data-state="cancelling"' in cancelled.get_data(as_text=True)


def test_pages_reattach_to_a_running_operation(client, logged_in, seed):
    app_id = seed.app("Acme")
    seed.failed_links(app_id, 2)
    operation_id = logged_in.post(f"/admin/api/retry/app/{app_id}").get_json()["data"][
        "operation_id"]
    app_page = client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert f'data-operation-id="{operation_id}"' in app_page
    filtered = client.get(f"/admin/notifications?app_id={app_id}").get_data(as_text=True)
    assert f'data-operation-id="{operation_id}"' in filtered
    # The unfiltered page shows the all-apps scope, which is idle.
    assert 'data-state="idle"' in client.get("/admin/notifications").get_data(as_text=True)
    queue = client.get("/admin/queue").get_data(as_text=True)
    assert operation_id in queue and "run bulk retry" in queue
    run_queued_admin_tasks()
    history = client.get("/admin/operations").get_data(as_text=True)
    assert f'id="op-{operation_id}" data-phase="delivering"' in history
    assert "Waiting for deliveries" in history


def test_htmx_request_from_expired_session_redirects_whole_page(client):
    response = client.post("/admin/api/retry/all",
                           headers={**HX, "HX-Current-URL": "http://localhost/admin/apps"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/admin/login?next=/admin/apps"


def test_app_scoped_buttons_name_the_app(client, logged_in, seed):
    app_id = seed.app("Acme <Docs>")
    seed.failed_links(app_id, 2)
    page = client.get(f"/admin/notifications?app_id={app_id}").get_data(as_text=True)
    assert "Retry all failed for Acme &lt;Docs&gt; (2)" in page
    confirm = client.get(f"/admin/api/retry/estimate?app_id={app_id}", headers=HX)
    assert "Retry 2 failed notifications for Acme &lt;Docs&gt;?" in confirm.get_data(as_text=True)


def test_list_page_ignores_unknown_parameters_the_api_names_them(logged_in, client, seed):
    seed.failed_links(seed.app(), 2)
    page = client.get("/admin/notifications?q=x&per_page=5")
    assert page.status_code == 200 and page.get_data(as_text=True).count('class="failed-row"') == 2
    api = client.get("/admin/api/notifications/failed?q=x")
    assert api.status_code == 400
    assert api.get_json() == {"error": "unknown query parameter 'q'; accepted: page, limit, "
                                       "sort_by, sort_order, app_id, search, failed_since, "
                                       "failed_until, cause"}
    assert client.get("/admin/api/notifications/in-progress?per_page=5").status_code == 400


def test_filter_form_works_without_javascript(logged_in, client, seed):
    """The Apply button submits a plain GET form: every field is a query parameter."""
    page = client.get("/admin/notifications").get_data(as_text=True)
    assert 'method="get"' in page and 'id="filters-apply"' in page
    for name in ("app_id", "search", "failed_since", "sort_by", "sort_order", "limit"):
        assert f'name="{name}"' in page


def test_failed_login_keeps_the_username(client):
    page = client.post("/admin/login", data={"username": "operator", "password": "wrong-one"})
    assert page.status_code == 401
    text = page.get_data(as_text=True)
    assert 'value="operator"' in text and "wrong-one" not in text


def test_favicon_and_overview_links(logged_in, client, seed):
    app_id = seed.app()
    seed.failed_links(app_id, 1)
    seed.link(app_id, seed.repo(), status="pending_snapshot", retry_count=0)
    page = client.get("/admin/").get_data(as_text=True)
    assert 'rel="icon" href="/admin/static/favicon.svg"' in page
    icon = client.get("/admin/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    icon.close()
    table = page.split('id="links-by-status"')[1].split("</table>")[0]
    assert 'href="/admin/notifications"' in table
    assert 'href="/admin/notifications?view=in_progress"' in table


def test_queue_shows_names_not_ids(logged_in, client, seed, empty_queue):
    from docora_admin.services.jobs import job_queue

    app_id = seed.app(name="Named App")
    repository_id = seed.repo(owner="acme", name="widgets")
    seed.link(app_id, repository_id, status="pending_snapshot", retry_count=0)
    job_queue.push_snapshot_jobs([(app_id, repository_id, None, 1)], stamp=1)
    page = client.get("/admin/queue").get_data(as_text=True)
    waiting = page.split('id="jobs-waiting"')[1].split("</table>")[0]
    assert "Named App" in waiting and "acme/widgets" in waiting
    assert 'id="queue-explained"' in page


def test_history_shows_how_long_a_running_operation_has_taken(logged_in, client, seed):
    app_id = seed.app()
    seed.failed_links(app_id, 2)
    assert logged_in.post(f"/admin/api/retry/app/{app_id}").status_code == 200
    page = client.get("/admin/operations").get_data(as_text=True)
    row = page.split('id="op-')[1].split("</tr>")[0]
    assert " s so far</td>" in row and " UTC</time>" in row
