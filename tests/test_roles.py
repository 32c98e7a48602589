"""Roles are enforced on the server for every rule of the URL map, by one rule: GET needs a
viewer, anything else an operator, the Accounts pages an admin. Templates show no action a role
cannot use."""
import re

import pytest

from docora_admin import roles
from tests.accounts_helpers import client_as
from tests.conftest import AuthActions

# Independent of the app's own table: what each kind of route must need.
ADMIN_ONLY_PREFIX = "/admin/accounts"
ANY_ROLE = {"/admin/logout", "/admin/api/logout", "/admin/login", "/admin/api/login",
            "/admin/account/password"}  # one's own password
# Admin-only outside the Accounts pages: creating and deleting apps.
ADMIN_ONLY = {("DELETE", "/admin/api/apps/<app_id>"), ("POST", "/admin/api/apps/onboard"),
              ("GET", "/admin/apps/onboard")}
RANK = {"viewer": 0, "operator": 1, "admin": 2}
SAMPLE = {"app_id": "app_000000000000000000000000",
          "repository_id": "repo_000000000000000000000000", "operation_id": "bulk_0123456789abcdef", "username": "nobody", "handle": "0" * 16,
          "filename": "css/admin.css", "file_format": "csv"}
_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def expected_role(rule, method):
    if rule.rule in ANY_ROLE:
        return "viewer"
    if rule.rule.startswith(ADMIN_ONLY_PREFIX) or (method, rule.rule) in ADMIN_ONLY:
        return "admin"
    return "viewer" if method == "GET" else "operator"


def _admin_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/admin") and rule.endpoint != "static":
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def _ordered(app):
    # Logging out last: it ends the session the walk uses.
    return sorted(_admin_rules(app), key=lambda rm: ("logout" in rm[0].rule, rm[0].rule))


@pytest.mark.usefixtures("empty_queue")
@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_rule_for_every_role(app, auth, role):
    if role == "admin":
        assert auth.login().status_code == 200  # ADMIN_USERNAME is an admin account
        actions = auth
    else:
        actions, _ = client_as(app, role)
    checked = 0
    for rule, method in _ordered(app):
        url = _ARGUMENT.sub(lambda m: SAMPLE[m.group(1)], rule.rule)
        needed = expected_role(rule, method)
        with app.app_context():
            assert roles.required_role(rule.endpoint, method) == needed, (method, rule.rule)
        for htmx in (False, True):
            headers = actions.headers(**({"HX-Request": "true"} if htmx else {}))
            response = actions._client.open(url, method=method, headers=headers)
            where = (role, method, url, htmx, response.status_code)
            if RANK[role] >= RANK[needed]:
                assert response.status_code != 403, where
                assert response.status_code < 500, where
                continue
            assert response.status_code == 403, where
            if htmx:
                assert "Error 403" in response.get_data(as_text=True), where
            elif rule.rule.startswith("/admin/api/"):
                body = response.get_json()
                assert set(body) == {"error"} and f"({role})" in body["error"], where
            else:
                assert f"Your role ({role}) cannot" in response.get_data(as_text=True), where
            checked += 1
    if role == "viewer":
        assert checked >= 2 * 12  # every POST and the admin pages
    assert checked or role == "admin"


def test_viewer_is_refused_before_anything_changes(app, seed):
    app_id, repo = seed.link(seed.app(), seed.repo())
    viewer, _ = client_as(app, "viewer")
    assert viewer._client.get("/admin/api/session").get_json()["role"] == "viewer"
    response = viewer.post("/admin/api/retry", json={"app_id": app_id, "repository_id": repo})
    assert response.status_code == 403
    assert response.get_json() == {
        "error": "Your role (viewer) cannot change anything: that needs the operator role"}
    from docora_admin import db
    with db.connection() as conn:
        assert conn.execute("SELECT status FROM app_repositories").fetchone()["status"] == "failed"
        assert conn.execute("SELECT count(*) AS n FROM audit_events "
                            "WHERE action LIKE 'retry.%'").fetchone()["n"] == 0
        denied = conn.execute("SELECT actor, target, details FROM audit_events "
                              "WHERE action = 'access.denied'").fetchone()
    assert denied == {"actor": "viewer-one", "target": "/admin/api/retry",
                      "details": {"method": "POST", "needs": "operator", "role": "viewer",
                                  "times": 1, "window_s": 600}}


def test_a_flood_of_refusals_is_a_few_rows_with_counts(app, seed):
    """Issue 24 L4: each refusal wrote a row (200 in 3.6 s, kept 400 days); now the first of an
    account, method and path in a 10-minute window, then the 10th, the 100th…"""
    from docora_admin import db

    viewer, _ = client_as(app, "viewer")
    for _ in range(120):
        assert viewer.post("/admin/api/retry/all").status_code == 403
    assert viewer.post("/admin/api/retry", json={}).status_code == 403  # another path
    with db.connection() as conn:
        rows = conn.execute("SELECT target, details FROM audit_events "
                            "WHERE action = 'access.denied' ORDER BY id").fetchall()
    assert [(row["target"], row["details"]["times"]) for row in rows] == [
        ("/admin/api/retry/all", 1), ("/admin/api/retry/all", 10),
        ("/admin/api/retry/all", 100), ("/admin/api/retry", 1)]


def test_operator_may_act_but_not_manage_accounts(app, seed):
    app_id, repo = seed.link(seed.app(), seed.repo())
    operator, _ = client_as(app, "operator")
    assert operator.post("/admin/api/retry",
                         json={"app_id": app_id, "repository_id": repo}).status_code == 200
    page = operator._client.get("/admin/accounts/")
    assert page.status_code == 403
    assert "needs the admin role" in page.get_data(as_text=True)


ACTION_MARKERS = ["retry-button", "row-select", "select-page", "selection-form",
                  "bulk-retry-button", "link-retry-button", "nav-accounts", "app-pause-button",
                  "app-resume-button", "app-close-circuit-button", "app-limits-form",
                  "app-resync-button", "link-resync-button", "bulk-pause-button", "hx-post"]


def test_viewer_pages_show_no_action(app, seed):
    app_id, repo = seed.link(seed.app("Shown"), seed.repo())
    viewer, _ = client_as(app, "viewer")
    for path in ["/admin/notifications", f"/admin/apps/{app_id}",
                 f"/admin/apps/{app_id}/links/{repo}", "/admin/", "/admin/audit"]:
        html = viewer._client.get(path).get_data(as_text=True)
        for marker in ACTION_MARKERS:
            assert marker not in html, (path, marker)
    assert "Your role (viewer) cannot retry" in viewer._client.get(
        "/admin/notifications").get_data(as_text=True)
    # No card text offers what the page does not let a viewer do.
    app_page = viewer._client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert "you can pause and cancel" not in app_page
    assert 'id="app-resync-viewer-note"' in app_page


def test_operator_and_admin_pages_show_their_actions(app, seed, auth):
    app_id, _ = seed.link(seed.app("Shown"), seed.repo())
    operator, _ = client_as(app, "operator")
    html = operator._client.get("/admin/notifications").get_data(as_text=True)
    assert "retry-button" in html and "row-select" in html and "bulk-retry-button" in html
    app_page = operator._client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert "you can pause and cancel" in app_page and "app-resync-viewer-note" not in app_page
    assert "nav-accounts" not in html
    assert auth.login().status_code == 200
    assert "nav-accounts" in auth._client.get("/admin/").get_data(as_text=True)


def test_anonymous_login_still_open_to_every_role(app):
    # A logged-in viewer may log in again (as someone else) and log out.
    viewer, _ = client_as(app, "viewer")
    again = AuthActions(viewer._client)
    from tests.accounts_helpers import PASSWORD
    assert again.login("viewer-one", PASSWORD).status_code == 200
    assert again.logout().status_code == 200
    assert viewer._client.get("/admin/api/session").status_code == 401
