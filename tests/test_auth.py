import pytest
import redis

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, TEST_REDIS_URL


def test_api_login_good_returns_csrf_and_session_works(client, auth):
    response = auth.login()
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True and len(body["csrf_token"]) > 20
    session = client.get("/admin/api/session")
    assert session.status_code == 200
    assert session.get_json()["authenticated"] is True
    assert session.get_json()["username"] == ADMIN_USERNAME


@pytest.mark.parametrize("username,password", [
    (ADMIN_USERNAME, "wrong password"), ("someone", ADMIN_PASSWORD), ("", ""),
])
def test_api_login_bad(client, auth, username, password):
    response = auth.login(username, password)
    expected = 400 if not username else 401
    assert response.status_code == expected
    assert client.get("/admin/api/session").status_code == 401


def test_api_login_body_must_be_json_object(client):
    assert client.post("/admin/api/login", json=["admin"]).status_code == 400
    assert client.post("/admin/api/login", data="{not json",
                       content_type="application/json").status_code == 400
    response = client.post("/admin/api/login", data={"username": "a", "password": "b"})
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_login_rate_limited_after_five_failures(client, auth):
    for _ in range(5):
        assert auth.login(password="nope").status_code == 401
    blocked = auth.login()  # even the right password waits out the minute
    assert blocked.status_code == 429
    assert blocked.get_json() == {"error": "Too many failed logins; try again in a minute"}


def test_logout_invalidates_copied_cookie(app, auth, client):
    auth.login()
    cookie = client.get_cookie("docora_admin_session")
    assert cookie is not None
    assert auth.logout().status_code == 200
    other = app.test_client()
    other.set_cookie("docora_admin_session", cookie.value)
    assert other.get("/admin/api/session").status_code == 401


def test_post_without_csrf_token_is_refused(client, auth):
    auth.login()
    response = client.post("/admin/api/logout")
    assert response.status_code == 400
    assert "CSRF" in response.get_json()["error"]
    assert client.get("/admin/api/session").status_code == 200


def test_session_cookie_flags(client, auth):
    response = auth.login()
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "Expires=" in header


def _form_login(client, next_path, headers=None):
    """What a browser does: load the form (which carries no CSRF token, see pages.login), post
    it from the same origin."""
    assert client.get("/admin/login").status_code == 200
    return client.post("/admin/login", headers=headers or {"Sec-Fetch-Site": "same-origin"},
                       data={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD,
                             "next": next_path})


@pytest.mark.parametrize("next_path,landing", [
    ("https://evil.example/steal", "/admin/"), ("//evil.example", "/admin/"),
    ("/elsewhere", "/admin/"), ("/admin/notifications?page=2", "/admin/notifications?page=2"),
])
def test_form_login_redirects_to_local_next_only(client, next_path, landing):
    response = _form_login(client, next_path)
    assert response.status_code == 302
    assert response.headers["Location"] == landing


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "https://evil.example"}, {"Origin": "null"}])
def test_cross_site_form_login_is_refused(client, headers):
    response = _form_login(client, "/admin/", headers=headers)
    assert response.status_code == 403
    assert client.get("/admin/api/session").status_code == 401


def test_form_login_session_works_for_htmx_and_forms(client):
    assert _form_login(client, "/admin/").status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    token = page.split('<meta name="csrf-token" content="')[1].split('"')[0]
    assert f'hx-headers=\'{{"X-CSRFToken": "{token}"}}\'' in page
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/api/session").status_code == 401


def _session_keys():
    return redis.Redis.from_url(TEST_REDIS_URL).keys("docora:session:*")


@pytest.mark.parametrize("path", ["/admin/login", "/admin/login?next=/admin/queue",
                                  "/admin/notifications", "/admin/nowhere", "/admin/apps/%00",
                                  "/admin/api/session"])
def test_anonymous_visits_write_no_session(app, path):
    for _ in range(50):
        app.test_client().get(path)  # a new client each time: no cookie, like a flood would
    assert _session_keys() == []


def test_failed_form_logins_write_no_session(app):
    for password in ("", "wrong password"):
        response = app.test_client().post("/admin/login", data={
            "username": ADMIN_USERNAME, "password": password})
        assert response.status_code in (400, 401)
        assert "Set-Cookie" not in response.headers
    assert _session_keys() == []


def test_login_writes_one_session(client):
    assert _form_login(client, "/admin/").status_code == 302
    assert len(_session_keys()) == 1


def _sample_url(rule):
    values = {arg: "app_000000000000000000000000" for arg in rule.arguments}
    return rule.rule.replace("<", "{").replace(">", "}").format(
        **{k.split(":")[-1]: v for k, v in values.items()}) if rule.arguments else rule.rule


def test_every_admin_rule_refuses_anonymous(app, client):
    public = {"/admin/login", "/admin/api/login"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint == "static" or rule.rule in public:
            continue
        url = _sample_url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            if rule.rule.startswith("/admin/api/"):
                assert response.status_code == 401, (method, url)
                assert response.get_json() == {"error": "Not authenticated"}
            else:
                assert response.status_code == 302, (method, url)
                assert response.headers["Location"].startswith("/admin/login?next=")
            htmx = client.open(url, method=method, headers={"HX-Request": "true"})
            assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith(
                "/admin/login"), (method, url)
            checked += 1
    assert checked >= 8


def test_next_param_is_local_path(client):
    response = client.get("/admin/notifications?search=x")
    assert response.headers["Location"] == "/admin/login?next=/admin/notifications?search%3Dx"


def test_a_session_the_store_lost_says_so_on_the_login_page(client):
    """The store forgot the session (a Redis restart without persistence, an expiry): the next
    page sends the browser to a login page that says its session ended; logging out does not."""
    assert _form_login(client, "/admin/").status_code == 302
    redis.Redis.from_url(TEST_REDIS_URL).delete(*_session_keys())
    response = client.get("/admin/queue")
    assert response.status_code == 302 and "ended=1" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="login-ended"' in page and "Your session has ended" in page
    htmx = client.get("/admin/queue", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and "ended=1" not in htmx.headers["HX-Redirect"]  # cookie gone

    assert _form_login(client, "/admin/").status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    token = page.split('<meta name="csrf-token" content="')[1].split('"')[0]
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    response = client.get("/admin/queue")
    assert response.status_code == 302 and "ended" not in response.headers["Location"]


def test_a_stranger_is_not_told_a_session_ended(app):
    response = app.test_client().get("/admin/queue")
    assert response.status_code == 302 and "ended" not in response.headers["Location"]
    page = app.test_client().get("/admin/login?ended=0").get_data(as_text=True)
    assert 'id="login-ended"' not in page


def test_logout_leaves_no_server_session_behind(client):
    """Issue 24 L5: the "logged out" message was a flash, i.e. a server-side session for the
    now anonymous browser, renewed by every anonymous request after it."""
    assert _form_login(client, "/admin/").status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    token = page.split('<meta name="csrf-token" content="')[1].split('"')[0]
    response = client.post("/admin/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith(
        "/admin/login?logged_out=1")
    assert "You have been logged out." in client.get(response.headers["Location"]).get_data(
        as_text=True)
    for _ in range(3):
        client.get("/admin/login")
    assert _session_keys() == []
