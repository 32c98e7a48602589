"""The audit trail the app itself cannot rewrite (issue 24, M3): the app's PostgreSQL role may
only read and append to it (real roles, real grants), pruning goes through audit_prune(), and a
hash chain that `flask --app app audit verify` walks catches an edited, a deleted and an
inserted event."""
import urllib.parse

import psycopg
import pytest

from docora_admin import db, db_roles
from docora_admin.services.team import audit
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, TEST_DATABASE_URL
from tests.processes import start_web
from tests.test_outages import HttpSession

ROLE = "docora_admin_test_app"


def _as_role(url, role):
    """The same database as another role (no password: the test servers trust 127.0.0.1)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rsplit('@')[-1]}"))


@pytest.fixture
def role_url(app):
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        db_roles.ensure_app_role(conn, ROLE, None, 400)
    return _as_role(TEST_DATABASE_URL, ROLE)


def _owner(statement, *params):
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        return conn.execute(statement, params)


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET actor = 'someone else'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_chain",
    "DROP TRIGGER audit_events_chain ON audit_events",
    "UPDATE audit_retention SET days = 1",
    "CREATE TABLE sneaky (id int)",
])
def test_the_app_role_cannot_rewrite_the_trail(role_url, statement):
    audit.record_alone("login.success", target="someone", actor="someone")
    with psycopg.connect(role_url) as conn:
        conn.execute("SET LOCAL docora.audit_pruning = 'on'")  # no help: it is a privilege
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    with db.connection() as conn:
        assert conn.execute("SELECT actor FROM audit_events").fetchone()["actor"] == "someone"


def test_the_app_role_appends_and_prunes_only_past_retention(role_url):
    with psycopg.connect(role_url, autocommit=True) as conn:
        for name in ("old", "new"):
            conn.execute("INSERT INTO audit_events (action, actor) VALUES ('login.success', %s)",
                         (name,))
        assert conn.execute("SELECT audit_prune(100)").fetchone()[0] == 0
    _owner("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    try:
        _owner("UPDATE audit_events SET occurred_at = now() - interval '401 days' "
               "WHERE actor = 'old'")
    finally:
        _owner("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    with psycopg.connect(role_url, autocommit=True) as conn:
        assert conn.execute("SELECT audit_prune(100)").fetchone()[0] == 1
        assert [r[0] for r in conn.execute("SELECT actor FROM audit_events")] == ["new"]


def test_the_app_runs_as_its_role(role_url, tmp_path, seed):
    app_id, repository_id = seed.link(seed.app(), seed.repo())
    web = start_web(tmp_path, DATABASE_URL=role_url)
    try:
        session = HttpSession(web.url)
        status, body, _ = session.request("POST", "/admin/api/login", {
            "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        assert status == 200
        session.csrf_token = body["csrf_token"]
        status, body, _ = session.request("POST", "/admin/api/retry", {
            "app_id": app_id, "repository_id": repository_id})
        assert status == 200, body
    finally:
        web.stop()
    assert [e["action"] for e in audit.events_page()[0]][:2] == ["retry.one", "login.success"]


def _verify(app):
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, result.output


def _trail(n=5):
    for k in range(n):
        audit.record_alone("retry.one", target=f"app/{k}", actor="ivy")
    with db.connection() as conn:
        return [r["id"] for r in conn.execute("SELECT id FROM audit_events ORDER BY id")]


def _with_triggers_off(statement, *params):
    """What only the owner can do (the app's role cannot): change the table past its triggers."""
    _owner("ALTER TABLE audit_events DISABLE TRIGGER USER")
    try:
        _owner(statement, *params)
    finally:
        _owner("ALTER TABLE audit_events ENABLE TRIGGER USER")


def test_verify_passes_an_intact_trail_and_names_an_edited_event(app):
    ids = _trail()
    assert _verify(app) == (0, "audit trail intact: 5 event(s), every hash chained\n")
    _with_triggers_off("UPDATE audit_events SET actor = 'mallory' WHERE id = %s", ids[2])
    code, output = _verify(app)
    assert code == 1 and f"broken at event {ids[2]}: its fields no longer match" in output


def test_verify_names_the_event_after_a_deleted_one(app):
    ids = _trail()
    _with_triggers_off("DELETE FROM audit_events WHERE id = %s", ids[2])
    code, output = _verify(app)
    assert code == 1 and f"broken at event {ids[3]}: the event before it is missing" in output


def test_verify_names_an_event_inserted_into_the_chain(app):
    ids = _trail()
    # A forged event claiming the third one as its predecessor, with a hash of its own fields.
    _with_triggers_off("""
        INSERT INTO audit_events (id, occurred_at, actor, action, target, details, prev_hash,
                                  row_hash)
        OVERRIDING SYSTEM VALUE
        SELECT %s, now(), 'ivy', 'retry.one', 'forged', '{}'::jsonb, row_hash, NULL
        FROM audit_events WHERE id = %s""", ids[-1] + 1000, ids[2])
    _with_triggers_off("UPDATE audit_events e SET row_hash = audit_event_hash(prev_hash, e) "
                       "WHERE id = %s", ids[-1] + 1000)
    code, output = _verify(app)
    assert code == 1 and f"broken at event {ids[-1] + 1000}: another event claims" in output
