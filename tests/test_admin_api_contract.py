"""DOCORA_CONTRACT.md §2, endpoint by endpoint: what the original Docora dashboard and its
scripts rely on (shapes, types, status codes, messages), and same-origin JSON without a CSRF
token. Onboarding and deletion have their own files (test_app_onboarding.py,
test_app_deletion.py), the failed list's shape is in test_failed_list.py."""
from datetime import datetime, timedelta, timezone

import pytest

from docora_admin import db
from docora_admin.same_origin import CROSS_SITE_MESSAGE
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = pytest.mark.usefixtures("empty_queue")

SAME_ORIGIN = [{"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://localhost"},
               {"Origin": "http://localhost:80", "Sec-Fetch-Site": "same-origin"}]


def _is_iso(value):
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


def _data(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert list(body) == ["data"]
    return body["data"]


def _set(sql, params):
    with db.connection() as conn:
        conn.execute(sql, params)


def _created(app_id, minutes_ago):
    _set("UPDATE apps SET created_at = now() - make_interval(mins => %s) WHERE app_id = %s",
         (minutes_ago, app_id))


# --- reads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/admin/api/overview", "/admin/api/apps",
                                  "/admin/api/apps/app_x", "/admin/api/queue"])
def test_reads_need_a_login(client, path):
    response = client.get(path)
    assert (response.status_code, response.get_json()) == (401, {"error": "Not authenticated"})


def test_overview_counts_what_the_overview_page_counts(client, logged_in, seed):
    empty = _data(client.get("/admin/api/overview"))
    assert {k: empty[k] for k in ("total_apps", "total_repositories", "failed_notifications",
                                  "queue_waiting", "queue_active")} == dict.fromkeys(
        ("total_apps", "total_repositories", "failed_notifications", "queue_waiting",
         "queue_active"), 0)
    acme, beta = seed.app(), seed.app()
    seed.failed_links(acme, 3)
    shared = seed.repo()
    seed.link(acme, shared, status="synced")
    seed.link(beta, shared, status="scanning")
    seed.repo(), seed.repo()  # repositories no app follows: not links
    retried = seed.link(beta, seed.repo())
    assert logged_in.post("/admin/api/retry", json=dict(zip(("app_id", "repository_id"),
                                                            retried))).status_code == 200
    data = _data(client.get("/admin/api/overview"))
    assert data["total_apps"] == 2
    # The original counts app_repositories rows here (its getOverviewCounts), as our page's
    # "Repository links" does.
    assert data["total_repositories"] == 6
    assert data["repositories_watched"] == 7
    assert data["failed_notifications"] == 3
    assert data["queue_waiting"] == 1  # the retry's job
    assert data["queue_active"] == 1  # the link being delivered
    assert data["total_links"] == 6
    assert all(isinstance(data[k], int) for k in ("total_apps", "total_repositories",
                                                  "failed_notifications", "queue_waiting",
                                                  "queue_active"))
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="stat-failed"><span class="stat-value">3<' in page


def test_apps_list_shape_and_counts(client, logged_in, seed):
    acme = seed.app(name="Acme", base_url="https://acme.example/hooks")
    seed.failed_links(acme, 2)
    seed.link(acme, seed.repo(), status="synced")
    body = _data(client.get("/admin/api/apps"))
    assert list(body) == ["data", "pagination"]
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 1, "total_pages": 1}
    (row,) = body["data"]
    assert set(row) == {"app_id", "app_name", "base_url", "created_at", "repository_count",
                        "failed_notification_count"}
    assert (row["app_id"], row["app_name"], row["base_url"]) == (
        acme, "Acme", "https://acme.example/hooks")
    assert (row["repository_count"], row["failed_notification_count"]) == (3, 2)
    assert _is_iso(row["created_at"])
    page = client.get("/admin/apps").get_data(as_text=True)
    assert "Acme" in page


def test_apps_list_empty_has_one_page(client, logged_in):
    body = _data(client.get("/admin/api/apps"))
    assert body == {"data": [], "pagination": {"page": 1, "limit": 20, "total": 0,
                                               "total_pages": 1}}


@pytest.mark.parametrize("raw,expected", [
    ("5", 5), ("10", 10), ("20", 20), ("50", 50), ("100", 100),
    ("7", 20), ("0", 20), ("-5", 20), ("1000", 20), ("ten", 20), ("", 20),
])
def test_apps_list_limit_falls_back_to_20(client, logged_in, raw, expected):
    body = _data(client.get(f"/admin/api/apps?limit={raw}"))
    assert body["pagination"]["limit"] == expected


def test_apps_list_pages(client, logged_in, seed):
    ids = [seed.app(name=f"App {i:02}") for i in range(12)]
    for minutes, app_id in enumerate(reversed(ids)):
        _created(app_id, minutes)  # ids[-1] newest
    first = _data(client.get("/admin/api/apps?limit=5"))
    assert first["pagination"] == {"page": 1, "limit": 5, "total": 12, "total_pages": 3}
    assert [r["app_id"] for r in first["data"]] == ids[::-1][:5]  # newest first by default
    last = _data(client.get("/admin/api/apps?limit=5&page=3"))
    assert [r["app_id"] for r in last["data"]] == ids[::-1][10:]
    beyond = _data(client.get("/admin/api/apps?limit=5&page=9"))
    assert beyond["data"] == [] and beyond["pagination"]["page"] == 9
    for raw in ("0", "-1", "x"):
        assert _data(client.get(f"/admin/api/apps?page={raw}"))["pagination"]["page"] == 1


def test_apps_list_sort_keys(client, logged_in, seed):
    big = seed.app(name="beta")
    seed.failed_links(big, 3)
    mid = seed.app(name="Alpha")
    seed.failed_links(mid, 1)
    seed.link(mid, seed.repo(), status="synced")
    seed.link(mid, seed.repo(), status="synced")
    seed.link(mid, seed.repo(), status="synced")
    none = seed.app(name="gamma")
    for minutes, app_id in ((30, big), (20, mid), (10, none)):
        _created(app_id, minutes)

    def order(query):
        return [r["app_id"] for r in _data(client.get(f"/admin/api/apps?{query}"))["data"]]

    assert order("") == [none, mid, big]
    assert order("sort_by=created_at&sort_order=asc") == [big, mid, none]
    assert order("sort_by=app_name") == [none, big, mid]  # desc: the default order
    assert order("sort_by=app_name&sort_order=asc") == [mid, big, none]  # case-insensitive
    assert order("sort_by=repository_count&sort_order=desc") == [mid, big, none]
    assert order("sort_by=failed_notification_count&sort_order=asc") == [none, mid, big]
    assert order("sort_by=created_at&sort_order=sideways") == [none, mid, big]


@pytest.mark.parametrize("key", ["name", "updated_at", "app_id; DROP TABLE apps", "APP_NAME"])
def test_apps_list_unknown_sort_key_is_400(client, logged_in, key):
    response = client.get("/admin/api/apps", query_string={"sort_by": key})
    assert (response.status_code, response.get_json()) == (
        400, {"error": f"Invalid sort_by: {key}"})


def test_apps_list_search_is_trimmed(client, logged_in, seed):
    acme = seed.app(name="Acme Corp")
    seed.app(name="Other")
    seed.app(name="100%_off")
    for query, expected in (("acme", [acme]), ("  ACME  ", [acme]), ("", None)):
        rows = _data(client.get("/admin/api/apps", query_string={"search": query}))["data"]
        if expected is None:
            assert len(rows) == 3
        else:
            assert [r["app_id"] for r in rows] == expected
    assert len(_data(client.get("/admin/api/apps?search=%25_"))["data"]) == 1  # literal %_


def test_app_detail_shape(client, logged_in, seed):
    acme = seed.app(name="Acme", base_url="https://acme.example/hooks")
    _set("UPDATE apps SET email = 'ops@acme.example', website = 'https://acme.example', "
         "description = 'Acme docs' WHERE app_id = %s", (acme,))
    private = seed.repo(owner="acme", name="secret",
                        url="https://x-access-token:ghp_supersecret@github.com/acme/secret")
    seed.link(acme, private)
    public = seed.repo(owner="acme", name="docs")
    seed.link(acme, public, status="synced")
    _set("UPDATE app_repositories SET last_scanned_at = now() WHERE repository_id = %s",
         (public,))
    _set("UPDATE repositories SET circuit_open_until = now() + interval '10 minutes' "
         "WHERE repository_id = %s", (private,))
    _set("INSERT INTO repository_snapshots (repository_id, commit_sha) VALUES (%s, 'abc')",
         (public,))
    _set("INSERT INTO app_delivered_files (app_id, repository_id, file_path, file_sha) "
         "VALUES (%s, %s, 'a.md', 'x'), (%s, %s, 'b.md', 'y')", (acme, public, acme, public))
    other = seed.app()
    seed.link(other, public)  # another app's link counts for that app only

    data = _data(client.get(f"/admin/api/apps/{acme}"))
    assert {k: data[k] for k in ("app_id", "app_name", "base_url", "repository_count",
                                 "failed_notification_count", "email", "website",
                                 "description", "snapshot_count", "delivery_count")} == {
        "app_id": acme, "app_name": "Acme", "base_url": "https://acme.example/hooks",
        "repository_count": 2, "failed_notification_count": 1, "email": "ops@acme.example",
        "website": "https://acme.example", "description": "Acme docs", "snapshot_count": 1,
        "delivery_count": 2}
    assert _is_iso(data["created_at"])
    repos = {r["repository_id"]: r for r in data["repositories"]}
    assert set(repos) == {private, public}
    for repo in repos.values():
        assert {"repository_id", "github_url", "owner", "name", "status", "last_scanned_at",
                "circuit_open"} <= set(repo)
    assert repos[private]["github_url"] == "https://***@github.com/acme/secret"
    assert "ghp_supersecret" not in client.get(f"/admin/api/apps/{acme}").get_data(as_text=True)
    assert (repos[private]["owner"], repos[private]["name"]) == ("acme", "secret")
    assert (repos[private]["status"], repos[private]["circuit_open"]) == ("failed", True)
    assert repos[private]["last_scanned_at"] is None
    assert (repos[public]["status"], repos[public]["circuit_open"]) == ("synced", False)
    assert _is_iso(repos[public]["last_scanned_at"])


def test_app_detail_of_an_app_without_links(client, logged_in, seed):
    data = _data(client.get(f"/admin/api/apps/{seed.app()}"))
    assert (data["repositories"], data["snapshot_count"], data["delivery_count"]) == ([], 0, 0)
    assert data["email"] is None


@pytest.mark.parametrize("app_id", ["app_000000000000000000000000", "nope", "x" * 80])
def test_app_detail_unknown_is_404(client, logged_in, app_id):
    response = client.get(f"/admin/api/apps/{app_id}")
    assert (response.status_code, response.get_json()) == (404, {"error": "App not found"})


def test_queue_shape_and_counts(client, logged_in, seed):
    from docora_admin.services.jobs import job_queue

    empty = _data(client.get("/admin/api/queue"))
    assert empty == {"status": dict.fromkeys(("waiting", "active", "completed", "failed",
                                              "delayed"), 0), "jobs": []}
    acme = seed.app(name="Acme")
    repo = seed.repo(owner="acme", name="docs")
    seed.link(acme, repo)
    seed.failed_links(acme, 2)
    seed.link(acme, seed.repo(), status="synced")
    seed.link(acme, seed.repo(), status="scanning")
    assert logged_in.post("/admin/api/retry",
                          json={"app_id": acme, "repository_id": repo}).status_code == 200
    later = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(minutes=5)
    job_queue.schedule_snapshot(acme, repo, None, 1, later)

    data = _data(client.get("/admin/api/queue"))
    assert data["status"] == {"waiting": 1, "active": 1, "completed": 1, "failed": 2,
                              "delayed": 1}
    waiting, delayed = data["jobs"]
    for job in (waiting, delayed):
        assert {"id", "name", "app_name", "repository_name", "status", "created_at",
                "processed_on"} <= set(job)
        assert (job["name"], job["app_name"], job["repository_name"]) == (
            "snapshot", "Acme", "acme/docs")
        assert isinstance(job["id"], str) and job["processed_on"] is None
    assert waiting["status"] == "waiting" and _is_iso(waiting["created_at"])
    assert delayed["status"] == "delayed" and _is_iso(delayed["run_at"])
    page = client.get("/admin/queue").get_data(as_text=True)
    assert 'id="queue-waiting">1<' in page and 'id="queue-scheduled">1<' in page


# --- cancel ----------------------------------------------------------------------------------

def test_cancel_of_a_finished_operation_is_200(client, logged_in, seed):
    from docora_admin.services.retries import bulk_runner

    seed.failed_links(seed.app(), 2)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    while bulk_runner.run_one_chunk(operation_id):
        pass
    response = logged_in.post(f"/admin/api/retry/cancel/{operation_id}")
    data = _data(response)
    assert data["message"] == "Cancellation requested"
    assert (data["changed"], data["operation_status"]) == (False, "completed")


def test_cancel_of_an_unknown_id_is_404_and_creates_nothing(client, logged_in):
    import redis

    from tests.conftest import TEST_REDIS_URL

    response = logged_in.post("/admin/api/retry/cancel/bulk_0123456789abcdef")
    assert (response.status_code, response.get_json()) == (
        404, {"error": "Operation not found or expired"})
    assert redis.Redis.from_url(TEST_REDIS_URL).keys("docora:bulk:*") == []


# --- re-sync at the original's paths ---------------------------------------------------------

def test_resync_of_one_link_at_the_original_path(client, logged_in, seed):
    app_id, repository_id = seed.link(seed.app(), seed.repo(), status="synced")
    data = _data(logged_in.post("/admin/api/resync", headers=SAME_ORIGIN[0],
                                json={"app_id": app_id, "repository_id": repository_id}))
    assert data["message"] == "Re-sync queued" and isinstance(data["job_id"], str)
    assert seed.link_status(app_id, repository_id)["status"] == "pending_snapshot"


@pytest.mark.parametrize("body,status,error", [
    ({}, 400, "app_id and repository_id are required"),
    ({"app_id": "app_x"}, 400, "app_id and repository_id are required"),
    ({"app_id": "app_x", "repository_id": "repo_x"}, 404, "App-repository link not found"),
])
def test_resync_of_one_link_refusals(client, logged_in, body, status, error):
    response = logged_in.post("/admin/api/resync", json=body)
    assert (response.status_code, response.get_json()) == (status, {"error": error})


def test_resync_of_an_app_at_the_original_path(client, logged_in, seed):
    app_id = seed.app()
    for _ in range(2):
        seed.link(app_id, seed.repo(), status="synced")
    data = _data(logged_in.post(f"/admin/api/resync/app/{app_id}", headers=SAME_ORIGIN[0],
                                json={}))
    assert data["message"] == "Bulk re-sync started" and data["total"] == 2
    assert data["operation_id"].startswith("bulk_")
    progress = _data(client.get(f"/admin/api/retry/progress/{data['operation_id']}"))
    assert (progress["total"], progress["kind"]) == (2, "resync")


@pytest.mark.parametrize("linked,error", [(False, "No repositories for this app"),
                                          (None, "App not found")])
def test_resync_of_an_app_with_nothing_to_resync_is_404(client, logged_in, seed, linked,
                                                        error):
    app_id = seed.app() if linked is False else "app_000000000000000000000000"
    response = logged_in.post(f"/admin/api/resync/app/{app_id}")
    assert (response.status_code, response.get_json()) == (404, {"error": error})


# --- same-origin JSON without a CSRF token ---------------------------------------------------

@pytest.mark.parametrize("headers", SAME_ORIGIN)
def test_same_origin_json_retry_needs_no_token(client, logged_in, seed, headers):
    app_id, repository_id = seed.link(seed.app(), seed.repo())
    response = client.post("/admin/api/retry", headers=headers,
                           json={"app_id": app_id, "repository_id": repository_id})
    assert _data(response)["message"] == "Retry queued"
    assert seed.link_status(app_id, repository_id)["status"] == "pending_snapshot"


def test_same_origin_json_bulk_and_cancel_need_no_token(client, logged_in, seed):
    app_id = seed.app()
    seed.failed_links(app_id, 2)
    started = _data(client.post(f"/admin/api/retry/app/{app_id}", headers=SAME_ORIGIN[0],
                                json={}))
    assert started["message"] == "Bulk retry started" and started["total"] == 2
    cancelled = client.post(f"/admin/api/retry/cancel/{started['operation_id']}",
                            headers=SAME_ORIGIN[1], content_type="application/json")
    assert _data(cancelled)["message"] == "Cancellation requested"


def test_same_origin_json_logout_needs_no_token_and_ends_the_session(app, client, auth):
    assert auth.login().status_code == 200
    cookie = client.get_cookie("docora_admin_session").value
    response = client.post("/admin/api/logout", headers={"Origin": "http://localhost"},
                           content_type="application/json")
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert client.get("/admin/api/session").status_code == 401
    copy = app.test_client()
    copy.set_cookie("docora_admin_session", cookie)
    assert copy.get("/admin/api/session").status_code == 401  # gone server-side


def test_the_original_dashboards_login_and_session(client):
    """Login as the original sends it (same-origin JSON), then its session call."""
    response = client.post("/admin/api/login", headers=SAME_ORIGIN[0],
                           json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert response.status_code == 200 and response.get_json()["success"] is True
    session = client.get("/admin/api/session").get_json()
    assert (session["authenticated"], session["username"]) == (True, ADMIN_USERNAME)


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    {"Origin": "null"},
])
def test_cross_site_json_is_refused(client, logged_in, seed, headers):
    app_id, repository_id = seed.link(seed.app(), seed.repo())
    response = client.post("/admin/api/retry", headers=headers,
                           json={"app_id": app_id, "repository_id": repository_id})
    assert (response.status_code, response.get_json()) == (403, {"error": CROSS_SITE_MESSAGE})
    logout = client.post("/admin/api/logout", headers=headers, content_type="application/json")
    assert logout.status_code == 403
    assert client.get("/admin/api/session").status_code == 200
    assert seed.link_status(app_id, repository_id)["status"] == "failed"


@pytest.mark.parametrize("headers,kwargs", [
    # A form: a cross-site page can send one without a preflight, so the token stays needed.
    (SAME_ORIGIN[0], {"data": {}}),
    (SAME_ORIGIN[1], {"data": {}}),
    # text/plain is what a cross-site form or fetch sends without a preflight.
    (SAME_ORIGIN[0], {"data": "{}", "content_type": "text/plain"}),
    # htmx: the console's pages carry the token.
    ({**SAME_ORIGIN[0], "HX-Request": "true"}, {"json": {}}),
    # No browser headers (a script): the token decides.
    ({}, {"json": {}}),
    ({"Sec-Fetch-Site": "none"}, {"json": {}}),
])
def test_without_token_forms_htmx_and_unmarked_json_are_refused(client, logged_in, headers,
                                                                 kwargs):
    response = client.post("/admin/api/logout", headers=headers, **kwargs)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/admin/api/session").status_code == 200


def test_same_origin_json_outside_the_api_keeps_the_token(client, logged_in):
    response = client.post("/admin/logout", headers=SAME_ORIGIN[0],
                           content_type="application/json")
    assert response.status_code == 400
    assert client.get("/admin/api/session").status_code == 200


def test_same_origin_json_still_needs_a_login_and_a_role(client, seed):
    app_id, repository_id = seed.link(seed.app(), seed.repo())
    response = client.post("/admin/api/retry", headers=SAME_ORIGIN[0],
                           json={"app_id": app_id, "repository_id": repository_id})
    assert (response.status_code, response.get_json()) == (401, {"error": "Not authenticated"})
    assert seed.link_status(app_id, repository_id)["status"] == "failed"
