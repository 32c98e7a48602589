"""Accounts: the CLI, the Accounts pages, the ADMIN_USERNAME account kept in step with the
environment, password hashes, and sessions ended when an account changes."""
import pytest
import redis
from werkzeug.security import generate_password_hash

from docora_admin import db, passwords, runtime
from docora_admin.services.team import account_sessions, accounts, audit
from tests.accounts_helpers import PASSWORD, client_as, make_account
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, TEST_REDIS_URL, AuthActions
from tests.test_security_headers import inline_code


def _account(username):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM accounts WHERE lower(username) = lower(%s)",
                            (username,)).fetchone()


def _session_works(actions):
    return actions._client.get("/admin/api/session").status_code == 200


# --- the CLI -------------------------------------------------------------------------------

def test_cli_add_reads_the_password_from_stdin_and_the_account_logs_in(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "add", "carol", "--role", "operator"],
                           input="carol's password\n")
    assert result.exit_code == 0, result.output
    assert "added carol (operator)" in result.output
    row = _account("carol")
    assert row["role"] == "operator" and row["password_hash"].startswith("$argon2id$")
    actions = AuthActions(app.test_client())
    assert actions.login("carol", "carol's password").status_code == 200


@pytest.mark.parametrize("args,stdin,message", [
    (["users", "add", "bad name", "--role", "viewer"], "long enough\n", "Usernames are"),
    (["users", "add", "dave", "--role", "viewer"], "short\n", "at least 8 characters"),
    (["users", "add", "ADMIN", "--role", "viewer"], "long enough\n", "already exists"),
    (["users", "set-role", "nobody", "admin"], "", "No account named nobody"),
    (["users", "disable", ADMIN_USERNAME], "", "account of ADMIN_USERNAME"),
])
def test_cli_refusals_say_why_and_change_nothing(app, args, stdin, message):
    before = [dict(row) for row in accounts.list_accounts()]
    result = app.test_cli_runner().invoke(args=args, input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert [dict(row) for row in accounts.list_accounts()] == before


def test_cli_list_set_role_disable_enable_set_password(app):
    runner = app.test_cli_runner()
    make_account("viewer", "erin")
    listing = runner.invoke(args=["users", "list"]).output
    assert "erin" in listing and "viewer" in listing and "(ADMIN_USERNAME)" in listing
    assert runner.invoke(args=["users", "set-role", "erin", "operator"]).exit_code == 0
    assert _account("erin")["role"] == "operator"
    assert runner.invoke(args=["users", "disable", "erin"]).exit_code == 0
    assert AuthActions(app.test_client()).login("erin", PASSWORD).status_code == 401
    assert runner.invoke(args=["users", "enable", "erin"]).exit_code == 0
    result = runner.invoke(args=["users", "set-password", "erin"], input="a new password\n")
    assert result.exit_code == 0, result.output
    assert AuthActions(app.test_client()).login("erin", PASSWORD).status_code == 401
    assert AuthActions(app.test_client()).login("erin", "a new password").status_code == 200
    with db.connection() as conn:
        trail = [(r["action"], r["actor"]) for r in conn.execute(
            "SELECT action, actor FROM audit_events WHERE target = 'erin' "
            "AND action LIKE 'account.%' ORDER BY id")]
    actions = [action for action, _ in trail]
    assert actions == ["account.create", "account.role_change", "account.disable",
                       "account.enable", "account.password_change"]
    assert all(actor.startswith("cli") for _, actor in trail[1:])


# --- sessions end when the account changes --------------------------------------------------

@pytest.mark.parametrize("change", [
    lambda name: accounts.disable(name, actor="test"),
    lambda name: accounts.set_password(name, "another password", actor="test"),
    lambda name: accounts.set_role(name, "viewer", actor="test"),
    lambda name: accounts.end_all_sessions(name, actor="test"),
])
def test_a_change_ends_every_session_of_the_account_at_once(app, change):
    first, name = client_as(app, "operator")
    second = AuthActions(app.test_client())
    assert second.login(name, PASSWORD).status_code == 200
    other, _ = client_as(app, "operator", "bystander")
    keys_before = redis.Redis.from_url(TEST_REDIS_URL).keys("docora:session:*")
    assert len(keys_before) == 3
    change(name)
    assert not _session_works(first) and not _session_works(second)
    assert _session_works(other)
    # Their keys are gone too, not only refused.
    assert len(redis.Redis.from_url(TEST_REDIS_URL).keys("docora:session:*")) == 1


def test_a_session_saved_back_after_its_end_still_does_not_work(app):
    """A request in flight when the sessions were ended writes its session back to Redis; the
    account's epoch refuses it anyway."""
    actions, name = client_as(app, "operator")
    store = redis.Redis.from_url(TEST_REDIS_URL)
    [key] = store.keys("docora:session:*")
    saved = store.dump(key)
    accounts.set_role(name, "viewer", actor="test")
    store.restore(key, 60_000, saved, replace=True)
    account = _account(name)
    index = f"{account_sessions.INDEX_PREFIX}{account['id']}"
    # No session is listed any more; the index keeps the epoch the change moved to.
    assert store.hgetall(index) == {b"epoch": str(account["session_epoch"]).encode()}
    assert not _session_works(actions)


def test_a_session_whose_epoch_moved_is_refused_even_while_still_listed(app, monkeypatch):
    """Should Redis miss the end of a change (the keys stay, the change's mark stays), the
    session check asks PostgreSQL, whose epoch refuses the old sessions."""
    actions, name = client_as(app, "operator")
    assert _session_works(actions)
    monkeypatch.setattr(account_sessions, "end_all", lambda *args, **kwargs: 0)
    accounts.set_role(name, "viewer", actor="test")
    account = _account(name)
    store = redis.Redis.from_url(TEST_REDIS_URL)
    index = store.hgetall(f"{account_sessions.INDEX_PREFIX}{account['id']}")
    assert len(index) == 2 and index[b"epoch"].startswith(b"changing:")  # still listed
    assert not _session_works(actions)


def test_a_change_that_cannot_tell_redis_is_not_made(app, monkeypatch):
    actions, name = client_as(app, "operator")

    def down(*args, **kwargs):
        raise redis.ConnectionError("down")
    monkeypatch.setattr(account_sessions, "mark_changing", down)
    with pytest.raises(redis.ConnectionError):
        accounts.disable(name, actor="test")
    assert _account(name)["disabled_at"] is None and _session_works(actions)


def test_checking_a_session_asks_postgresql_only_when_redis_does_not_know(app, monkeypatch):
    actions, name = client_as(app, "operator")
    assert _session_works(actions)  # fills the account's epoch if the login did not

    def no_database():
        raise AssertionError("the session check read PostgreSQL")
    monkeypatch.setattr(db, "connection", no_database)
    assert _session_works(actions)
    assert actions._client.get("/admin/api/session").get_json()["username"] == name


def test_admin_sees_and_ends_one_session_of_an_account(app, auth):
    first, name = client_as(app, "viewer")
    second = AuthActions(app.test_client())
    assert second.login(name, PASSWORD).status_code == 200
    assert auth.login().status_code == 200
    page = auth._client.get(f"/admin/accounts/{name}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and html.count("end-session-button") == 2
    account = _account(name)
    sessions = account_sessions.list_sessions(account["id"], 3600, 12 * 3600)
    assert [s["source_address"] for s in sessions] == ["127.0.0.1", "127.0.0.1"]
    # The session id itself is a credential: the page shows handles only.
    for key in redis.Redis.from_url(TEST_REDIS_URL).keys("docora:session:*"):
        assert key.decode().split(":")[-1] not in html
    first_sid = first._client.get_cookie("docora_admin_session").value
    handle = account_sessions.handle_of(first_sid)
    response = auth.post(f"/admin/accounts/{name}/sessions/{handle}/end")
    assert response.status_code == 302
    assert not _session_works(first) and _session_works(second)
    assert auth.post(f"/admin/accounts/{name}/sessions/{handle}/end").status_code == 404


# --- the Accounts pages ----------------------------------------------------------------------

def test_accounts_page_adds_changes_and_refuses_bad_input(app, auth):
    assert auth.login().status_code == 200
    client = auth._client
    response = auth.post("/admin/accounts/", data={"username": "frank", "role": "viewer",
                                                   "password": "frank's password"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/frank")
    assert "frank" in client.get("/admin/accounts/").get_data(as_text=True)
    taken = auth.post("/admin/accounts/", data={"username": "Frank", "role": "viewer",
                                                "password": "frank's password"})
    assert taken.status_code == 409
    assert "An account named Frank already exists" in taken.get_data(as_text=True)
    bad_role = auth.post("/admin/accounts/", data={"username": "gina", "role": "root",
                                                   "password": "long enough"})
    assert bad_role.status_code == 400 and _account("gina") is None
    assert auth.post("/admin/accounts/frank/role", data={"role": "operator"}).status_code == 302
    assert _account("frank")["role"] == "operator"
    short = auth.post("/admin/accounts/frank/password", data={"password": "short"})
    assert short.status_code == 400 and "at least 8" in short.get_data(as_text=True)
    assert auth.post("/admin/accounts/frank/disable").status_code == 302
    assert _account("frank")["disabled_at"] is not None
    assert auth.post("/admin/accounts/frank/enable").status_code == 302
    assert _account("frank")["disabled_at"] is None
    env = auth.post(f"/admin/accounts/{ADMIN_USERNAME}/disable")
    assert env.status_code == 409 and _account(ADMIN_USERNAME)["disabled_at"] is None
    assert auth.post("/admin/accounts/nobody/disable").status_code == 404


# --- one's own account -------------------------------------------------------------------------

def test_any_role_changes_its_own_password_and_keeps_this_session(app):
    this, name = client_as(app, "viewer")
    other = AuthActions(app.test_client())
    assert other.login(name, PASSWORD).status_code == 200
    page = this._client.get("/admin/account/").get_data(as_text=True)
    assert "own-password-form" in page and page.count("<tr>") == 1 + 2  # head, two sessions
    wrong = this.post("/admin/account/password", data={"current_password": "not it",
                                                        "new_password": "a new password"})
    assert wrong.status_code == 400 and "current password is not right" in wrong.get_data(
        as_text=True)
    short = this.post("/admin/account/password", data={"current_password": PASSWORD,
                                                        "new_password": "short"})
    assert short.status_code == 400
    done = this.post("/admin/account/password", data={"current_password": PASSWORD,
                                                       "new_password": "a new password"})
    assert done.status_code == 302
    assert _session_works(this) and not _session_works(other)
    this.csrf_token = this._client.get("/admin/api/session").get_json()["csrf_token"]
    assert AuthActions(app.test_client()).login(name, "a new password").status_code == 200
    with db.connection() as conn:
        [change] = conn.execute("SELECT actor, target FROM audit_events "
                                "WHERE action = 'account.password_change'").fetchall()
    assert change == {"actor": name, "target": name}


def test_guessing_the_current_password_meets_the_login_limit(app):
    this, name = client_as(app, "operator")
    statuses = [this.post("/admin/account/password", data={
        "current_password": f"guess {n}", "new_password": "a new password"}).status_code
        for n in range(6)]
    assert statuses == [400] * 5 + [429]
    assert _account(name)["password_hash"] and AuthActions(app.test_client()).login(
        name, PASSWORD).status_code == 429  # the address waits out the minute


def test_the_environment_account_cannot_change_its_password_here(app, auth):
    assert auth.login().status_code == 200
    response = auth.post("/admin/account/password", data={"current_password": ADMIN_PASSWORD,
                                                           "new_password": "a new password"})
    assert response.status_code == 409
    assert AuthActions(app.test_client()).login().status_code == 200


# --- the ADMIN_USERNAME account and password hashes -----------------------------------------

def _settings(**changes):
    import dataclasses
    return dataclasses.replace(runtime.settings(), **changes)


def test_restart_with_the_same_environment_changes_nothing(app, auth):
    assert auth.login().status_code == 200
    before = dict(_account(ADMIN_USERNAME))
    assert accounts.sync_environment_account(runtime.settings()) == []
    assert dict(_account(ADMIN_USERNAME)) == before
    assert _session_works(auth)


def test_new_admin_password_in_the_environment_ends_its_sessions(app, auth):
    assert auth.login().status_code == 200
    try:
        changed = accounts.sync_environment_account(_settings(admin_password="a new one!"))
        assert changed == ["password"]
        assert not _session_works(auth)
        assert AuthActions(app.test_client()).login(password="a new one!").status_code == 200
    finally:
        accounts.sync_environment_account(runtime.settings())
    assert auth.login().status_code == 200


def test_werkzeug_hash_from_the_environment_logs_in_and_is_upgraded_once(app):
    old_hash = generate_password_hash("the old way!")
    try:
        settings = _settings(admin_password=None, admin_password_hash=old_hash)
        assert accounts.sync_environment_account(settings) == ["password"]
        assert _account(ADMIN_USERNAME)["password_hash"] == old_hash
        assert AuthActions(app.test_client()).login(password="the old way!").status_code == 200
        upgraded = _account(ADMIN_USERNAME)
        assert upgraded["password_hash"].startswith("$argon2id$")
        assert passwords.verify(upgraded["password_hash"], "the old way!")
        # The next start-up with the same ADMIN_PASSWORD_HASH keeps the upgrade.
        assert accounts.sync_environment_account(settings) == []
        assert AuthActions(app.test_client()).login(password="the old way!").status_code == 200
    finally:
        accounts.sync_environment_account(runtime.settings())


def test_a_new_admin_username_takes_over_the_environment_role(app):
    try:
        assert accounts.sync_environment_account(_settings(admin_username="root")) == ["created"]
        assert _account("root")["from_environment"] and _account("root")["role"] == "admin"
        assert not _account(ADMIN_USERNAME)["from_environment"]
    finally:
        assert "now from environment" in accounts.sync_environment_account(runtime.settings())
        with db.connection() as conn:
            conn.execute("DELETE FROM accounts WHERE username = 'root'")


def test_login_takes_the_same_path_for_unknown_and_disabled_accounts(app):
    make_account("viewer", "hank")
    accounts.disable("hank", actor="test")
    for name in ("hank", "nobody", "x" * 100):
        response = AuthActions(app.test_client()).login(name, PASSWORD)
        assert response.status_code == 401
        assert response.get_json() == {"error": "Invalid credentials"}
    assert AuthActions(app.test_client()).login(ADMIN_USERNAME.upper(),
                                                ADMIN_PASSWORD).status_code == 200


def test_account_and_audit_pages_hold_no_inline_code(app, auth):
    make_account("viewer", "ivan")
    audit.record_alone("login.failure", target='<img src=x onerror="y">',
                       details={"username": '<script>z</script>'})
    assert auth.login().status_code == 200
    for path in ("/admin/audit", "/admin/accounts/", "/admin/accounts/ivan",
                 f"/admin/accounts/{ADMIN_USERNAME}", "/admin/account/"):
        response = auth._client.get(path)
        assert response.status_code == 200, path
        assert inline_code(response.get_data(as_text=True)) == [], path
