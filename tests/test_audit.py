"""The audit trail: an event for each action (in the action's own transaction), append-only in
the database, pruned after AUDIT_RETENTION_DAYS, and shown by /admin/audit and GET
/admin/api/audit with filters and keyset pages. Also the absolute session lifetime."""
import time
import psycopg
import pytest
import redis

from docora_admin import auth as auth_module
from docora_admin import db
from docora_admin.huey_app import huey
from docora_admin.services.team import audit
from tests.accounts_helpers import client_as
from tests.conftest import ADMIN_USERNAME, TEST_REDIS_URL, AuthActions

pytestmark = pytest.mark.usefixtures("empty_queue")


def events(action_prefix=""):
    with db.connection() as conn:
        return [dict(row) for row in conn.execute(
            "SELECT actor, source_address, action, target, details FROM audit_events "
            "WHERE action LIKE %s ORDER BY id", (action_prefix + "%",))]


def _login_from(app, username, password, address):
    return app.test_client().post("/admin/api/login",
                                  json={"username": username, "password": password},
                                  environ_base={"REMOTE_ADDR": address})


# --- what is recorded ---------------------------------------------------------------------------

def test_logins_logouts_and_lockouts_are_recorded(app, auth):
    assert auth.login().status_code == 200
    assert auth.logout().status_code == 200
    for _ in range(5):
        assert _login_from(app, "mallory", "guess", "10.9.9.9").status_code == 401
    for _ in range(3):  # refused: recorded once per window, not once per attempt
        assert _login_from(app, "mallory", "guess", "10.9.9.9").status_code == 429
    trail = events("log")
    assert trail[0] == {"actor": ADMIN_USERNAME, "source_address": "127.0.0.1",
                        "action": "login.success", "target": ADMIN_USERNAME, "details": {}}
    assert trail[1]["action"] == "logout" and trail[1]["actor"] == ADMIN_USERNAME
    failures = [e for e in trail if e["action"] == "login.failure"]
    assert len(failures) == 5
    # No account is named mallory: what was typed is not kept (it may be a password).
    assert failures[0] == {"actor": None, "source_address": "10.9.9.9",
                           "action": "login.failure", "target": "(unknown account)",
                           "details": {"username": "(unknown account)"}}
    [lockout] = [e for e in trail if e["action"] == "login.lockout"]
    assert lockout["details"] == {"username": "(unknown account)",
                                  "reason": "Too many failed logins; try again in a minute"}


def test_a_failed_login_to_an_account_names_it_in_its_own_case(app):
    assert _login_from(app, ADMIN_USERNAME.upper(), "not it", "10.9.9.8").status_code == 401
    [failure] = [e for e in events("log") if e["action"] == "login.failure"]
    assert failure["target"] == ADMIN_USERNAME


def test_form_login_failure_is_recorded_too(app):
    response = app.test_client().post("/admin/login", data={"username": ADMIN_USERNAME,
                                                            "password": "not it"})
    assert response.status_code == 401
    assert [e["action"] for e in events()] == ["login.failure"]


def test_retries_and_cancel_are_recorded_with_their_actor(app, seed):
    operator, name = client_as(app, "operator")
    app_id = seed.app()
    one = seed.link(app_id, seed.repo())
    seed.failed_links(app_id, 3)
    assert operator.post("/admin/api/retry", json={"app_id": one[0],
                                                   "repository_id": one[1]}).status_code == 200
    started = operator.post(f"/admin/api/retry/app/{app_id}").get_json()["data"]
    assert operator.post(f"/admin/api/retry/cancel/{started['operation_id']}").status_code == 200
    huey.flush()
    [single] = events("retry.one")
    assert single["actor"] == name and single["target"] == f"{one[0]}/{one[1]}"
    [bulk] = events("retry.bulk_start")
    assert bulk["actor"] == name and bulk["target"] == started["operation_id"]
    assert bulk["details"] == {"scope": "app", "app_id": app_id, "filter": None, "total": 3}
    [cancel] = events("operation.cancel")
    assert cancel["actor"] == name and cancel["target"] == started["operation_id"]
    # History and the operation page name the real actor.
    history = operator._client.get("/admin/operations").get_data(as_text=True)
    assert f">{name}</a>" in history
    page = operator._client.get(f"/admin/operations/{started['operation_id']}")
    assert f">{name}</a>" in page.get_data(as_text=True)


def test_selection_and_all_starts_record_scope_filter_and_total(app, auth, seed):
    assert auth.login().status_code == 200
    app_id = seed.app("Picked")
    links = seed.failed_links(app_id, 2)
    response = auth.post("/admin/api/retry/selection", json={
        "links": [{"app_id": a, "repository_id": r} for a, r in links]})
    assert response.status_code == 200
    huey.flush()
    with db.connection() as conn:
        conn.execute("UPDATE bulk_operations SET status = 'completed'")
    seed.failed_links(seed.app(), 1)
    assert auth.post("/admin/api/retry/all").status_code == 200
    selection, everything = events("retry.bulk_start")
    assert selection["details"] == {"scope": "selection", "app_id": None,
                                    "filter": {"links": 2}, "total": 2}
    # The selection was never run (its task was flushed): its two links are still failed.
    assert everything["details"]["scope"] == "all" and everything["details"]["total"] == 3


def test_retry_now_is_recorded(app, auth, seed):
    app_id, repo = seed.link(seed.app(), seed.repo(), status="pending_snapshot", retry_count=2)
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET next_attempt_at = now() + interval '1 hour'")
    assert auth.login().status_code == 200
    assert auth.post("/admin/api/retry/now", json={"app_id": app_id,
                                                   "repository_id": repo}).status_code == 200
    [now] = events("retry.now")
    assert now["actor"] == ADMIN_USERNAME and now["target"] == f"{app_id}/{repo}"


def test_a_refused_action_records_nothing(app, auth, seed):
    app_id, repo = seed.link(seed.app(), seed.repo(), status="synced")
    assert auth.login().status_code == 200
    assert auth.post("/admin/api/retry", json={"app_id": app_id,
                                               "repository_id": repo}).status_code == 409
    assert auth.post("/admin/api/retry/all").status_code == 404
    assert events("retry") == [] and events("operation") == []


def test_the_event_commits_with_its_change_or_not_at_all(app, seed):
    """record() writes in the caller's transaction: a rollback takes the event with it."""
    with pytest.raises(RuntimeError), db.connection() as conn:
        audit.record(conn, "retry.one", target="x/y", actor="test")
        raise RuntimeError("the change failed after the event was written")
    assert events() == []


# --- append-only and retention -------------------------------------------------------------------

def test_the_database_refuses_to_update_or_delete_events(app):
    audit.record_alone("login.success", target="someone", actor="someone")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        with db.connection() as conn:
            conn.execute("UPDATE audit_events SET actor = 'someone else'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="retention pruning"):
        with db.connection() as conn:
            conn.execute("DELETE FROM audit_events")
    assert events()[0]["actor"] == "someone"


def test_pruning_deletes_only_events_past_retention_and_says_so(app):
    audit.record_alone("login.success", target="old", actor="old")
    audit.record_alone("login.success", target="new", actor="new")
    assert audit.prune() == 0  # nothing is 400 days old
    # Age one event (the trigger refuses the update, so it is switched off for the test).
    with db.connection() as conn:
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        conn.execute("UPDATE audit_events SET occurred_at = occurred_at - interval '401 days' "
                     "WHERE actor = 'old'")
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    assert audit.prune() == 1
    assert [(e["action"], e["actor"]) for e in events()] == [("login.success", "new"),
                                                           ("audit.prune", "system")]
    assert events("audit.prune")[0]["details"] == {"deleted": 1, "older_than_days": 400}


# --- the page and the API ------------------------------------------------------------------------

def test_audit_api_filters_and_pages(app, auth):
    assert auth.login().status_code == 200
    for n in range(60):
        audit.record_alone("retry.one", target=f"app/{n}", actor="ivy")
    audit.record_alone("operation.cancel", target="bulk_x", actor="jack")
    client = auth._client
    first = client.get("/admin/api/audit?actor=ivy").get_json()
    assert len(first["data"]) == 50 and first["data"][0]["target"] == "app/59"
    second = client.get(f"/admin/api/audit?actor=ivy&before={first['next_cursor']}").get_json()
    assert [e["target"] for e in second["data"]] == [f"app/{n}" for n in range(9, -1, -1)]
    assert second["next_cursor"] is None
    by_area = client.get("/admin/api/audit?action=operation").get_json()["data"]
    assert [(e["action"], e["actor"]) for e in by_area] == [("operation.cancel", "jack")]
    logins = client.get("/admin/api/audit?action=login.success").get_json()["data"]
    assert [e["actor"] for e in logins] == [ADMIN_USERNAME]
    future = client.get("/admin/api/audit?since=2099-01-01T00:00").get_json()["data"]
    assert future == []
    past = client.get("/admin/api/audit?until=2001-01-01T00:00").get_json()["data"]
    assert past == []


@pytest.mark.parametrize("query,message", [
    ("action=DROP TABLE", "action must be"), ("before=abc", "before must be"),
    ("since=yesterday", "since must be"), ("since=2026-01-02&until=2026-01-01", "before until"),
    ("actor=" + "x" * 300, "actor must be"),
])
def test_audit_api_refuses_bad_filters(app, auth, query, message):
    assert auth.login().status_code == 200
    response = auth._client.get(f"/admin/api/audit?{query}")
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_audit_page_shows_filters_and_escapes_what_it_shows(app, auth):
    assert auth.login().status_code == 200
    audit.record_alone("login.failure", target="<script>x</script>",
                       details={"username": "<script>x</script>"})
    html = auth._client.get("/admin/audit?action=login").get_data(as_text=True)
    assert "<script>x" not in html and "&lt;script&gt;x" in html
    assert 'value="login"' in html
    assert auth._client.get("/admin/audit?before=zz").status_code == 400


# --- the absolute session lifetime ---------------------------------------------------------------

def test_a_session_ends_at_its_absolute_lifetime_however_active(app, auth):
    assert auth.login().status_code == 200
    client = auth._client
    assert client.get("/admin/api/session").status_code == 200
    with client.session_transaction() as session:
        session[auth_module.LOGIN_AT] = time.time() - 12 * 3600 + 30
    assert client.get("/admin/api/session").status_code == 200  # 30 s left
    with client.session_transaction() as session:
        session[auth_module.LOGIN_AT] = time.time() - 12 * 3600 - 1
    assert client.get("/admin/api/session").status_code == 401
    assert redis.Redis.from_url(TEST_REDIS_URL).keys("docora:session:*") == []
    [expired] = events("session.expire")
    assert expired["target"] == ADMIN_USERNAME
    # Logging in again starts a new lifetime.
    assert AuthActions(client).login().status_code == 200
    assert client.get("/admin/api/session").status_code == 200


def test_delivery_control_actions_are_recorded(app, seed):
    operator, name = client_as(app, "operator")
    app_id = seed.app("Controlled")
    link = seed.link(app_id, seed.repo(), status="synced")
    seed.failed_links(app_id, 2)
    assert operator.post(f"/admin/api/apps/{app_id}/pause").status_code == 200
    assert operator.post(f"/admin/api/apps/{app_id}/resume").status_code == 200
    assert operator.post(f"/admin/api/apps/{app_id}/circuit/close").status_code == 200
    assert operator.post(f"/admin/api/apps/{app_id}/limits", json={
        "rate_per_second": 5, "max_concurrency": 2}).status_code == 200
    assert operator.post("/admin/api/links/resync", json={
        "app_id": link[0], "repository_id": link[1]}).status_code == 200
    started = operator.post(f"/admin/api/retry/app/{app_id}").get_json()["data"]
    operation_id = started["operation_id"]
    assert operator.post(f"/admin/api/retry/pause/{operation_id}").status_code == 200
    assert operator.post(f"/admin/api/retry/resume/{operation_id}").status_code == 200
    huey.flush()
    trail = [(e["action"], e["target"]) for e in events() if e["actor"] == name
             and not e["action"].startswith("login")]
    assert trail == [("app.pause", app_id), ("app.resume", app_id),
                     ("app.circuit_close", app_id), ("app.limits_set", app_id),
                     ("resync.one", f"{link[0]}/{link[1]}"),
                     ("retry.bulk_start", operation_id), ("operation.pause", operation_id),
                     ("operation.resume", operation_id)]
    assert events("app.limits_set")[0]["details"] == {"rate_per_second": 5,
                                                      "max_concurrency": 2}
    # Refused ones record nothing.
    assert operator.post(f"/admin/api/retry/resume/{operation_id}").status_code == 409
    assert operator.post("/admin/api/apps/app_nope/pause").status_code == 404
    assert len(events("operation.resume")) == 1 and len(events("app.pause")) == 1


def test_an_app_resync_is_recorded_as_its_own_kind(app, auth, seed):
    app_id = seed.app("Resynced")
    seed.link(app_id, seed.repo(), status="synced")
    assert auth.login().status_code == 200
    started = auth.post(f"/admin/api/apps/{app_id}/resync").get_json()["data"]
    [start] = events("resync.bulk_start")
    assert start["target"] == started["operation_id"] and start["actor"] == ADMIN_USERNAME
    assert start["details"]["total"] == 1 and events("retry.bulk_start") == []
