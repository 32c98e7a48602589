"""Onboarding an app (DOCORA_CONTRACT.md §2 `POST /admin/api/apps/onboard`, and the console's
page): 201 with the app id and a token shown once, stored as the original stores them (a bcrypt
hash the original's API can check, the client key encrypted), the field bounds, the 422 rules
for an unsafe base_url and ALLOW_PRIVATE_WEBHOOKS, roles, audit."""
import dataclasses
import re
from datetime import datetime

import bcrypt
import pytest

from docora_admin import crypto, db, runtime
from tests.accounts_helpers import client_as

pytestmark = pytest.mark.usefixtures("empty_queue")

GOOD = {"base_url": "https://hooks.example.com/docora", "app_name": "Acme Docs",
        "email": "team@example.com", "website": "https://example.com",
        "description": "Docs for Acme", "client_auth_key": "k" * 16}
HX = {"HX-Request": "true", "HX-Target": "onboard"}


@pytest.fixture
def strict(monkeypatch):
    """ALLOW_PRIVATE_WEBHOOKS off, as in production (the suite's receivers need it on)."""
    monkeypatch.setattr(runtime, "_settings", dataclasses.replace(
        runtime.settings(), allow_private_webhooks=False))


def _app_row(app_id):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM apps WHERE app_id = %s", (app_id,)).fetchone()


def _apps():
    with db.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM apps").fetchone()["n"]


def test_onboarding_answers_201_with_credentials_shown_once(client, logged_in, strict):
    response = client.post("/admin/api/apps/onboard", json=GOOD,
                           headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    created = body["data"]
    assert set(created) == {"app_id", "token", "created_at"}
    # The original sends the three bare; the contract inside `data`: both hold.
    assert {k: body[k] for k in created} == created
    assert re.fullmatch(r"app_[0-9a-f]{24}", created["app_id"])
    assert re.fullmatch(r"docora_[0-9a-f]{64}", created["token"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", created["created_at"])
    datetime.fromisoformat(created["created_at"].replace("Z", "+00:00"))
    row = _app_row(created["app_id"])
    assert row["token_hash"].startswith("$2b$12$")
    assert bcrypt.checkpw(created["token"].encode(), row["token_hash"].encode())
    assert created["token"] not in str(dict(row))
    assert crypto.decrypt(runtime.settings().encryption_key,
                          row["client_auth_key_encrypted"]) == GOOD["client_auth_key"]
    assert (row["app_name"], row["base_url"], row["email"], row["website"],
            row["description"]) == ("Acme Docs", GOOD["base_url"], GOOD["email"],
                                    GOOD["website"], GOOD["description"])
    # Never again: the app's JSON and pages do not carry the token or the key.
    detail = client.get(f"/admin/api/apps/{created['app_id']}").get_data(as_text=True)
    page = client.get(f"/admin/apps/{created['app_id']}").get_data(as_text=True)
    for shown in (detail, page):
        assert created["token"] not in shown and GOOD["client_auth_key"] not in shown
    listed = client.get("/admin/api/apps").get_json()["data"]["data"]
    assert [a["app_id"] for a in listed] == [created["app_id"]]
    with db.connection() as conn:
        event = conn.execute("SELECT target, details FROM audit_events "
                             "WHERE action = 'app.onboard'").fetchone()
    assert event["target"] == created["app_id"]
    assert event["details"] == {"app_name": "Acme Docs", "base_url": GOOD["base_url"]}
    assert created["token"] not in str(event) and GOOD["client_auth_key"] not in str(event)


def test_optional_fields_may_be_left_out(client, logged_in, strict):
    body = {k: GOOD[k] for k in ("base_url", "app_name", "email", "client_auth_key")}
    response = logged_in.post("/admin/api/apps/onboard", json=body)
    assert response.status_code == 201
    row = _app_row(response.get_json()["data"]["app_id"])
    assert (row["website"], row["description"]) == (None, None)


@pytest.mark.parametrize("base_url,error", [
    ("http://hooks.example.com/x", "URL must use HTTPS"),
    ("https://localhost/x", "Localhost URLs are not allowed"),
    ("https://LOCALHOST:8443/x", "Localhost URLs are not allowed"),
    ("https://127.0.0.1/x", "Private IP addresses are not allowed"),
    ("https://10.1.2.3/x", "Private IP addresses are not allowed"),
    ("https://172.16.0.9/x", "Private IP addresses are not allowed"),
    ("https://192.168.1.1/x", "Private IP addresses are not allowed"),
    ("https://[::1]/x", "Localhost URLs are not allowed"),
    ("https://169.254.169.254/latest", "Link-local addresses are not allowed"),
])
def test_an_unsafe_base_url_is_422_naming_the_rule(client, logged_in, strict, base_url,
                                                    error):
    response = logged_in.post("/admin/api/apps/onboard", json={**GOOD, "base_url": base_url})
    assert (response.status_code, response.get_json()) == (422, {"error": error})
    assert _apps() == 0


def test_allow_private_webhooks_lifts_the_address_rules(client, logged_in):
    assert runtime.settings().allow_private_webhooks  # the suite's setting
    response = logged_in.post("/admin/api/apps/onboard",
                              json={**GOOD, "base_url": "http://127.0.0.1:8025/hooks"})
    assert response.status_code == 201


@pytest.mark.parametrize("change,error", [
    ({"base_url": None}, "base_url is required"),
    ({"base_url": "not a url"}, "base_url must be a valid URL"),
    ({"base_url": "https://"}, "base_url must be a valid URL"),
    ({"base_url": 42}, "base_url must be a string"),
    ({"app_name": "ab"}, "app_name must be 3 to 100 characters"),
    ({"app_name": "x" * 101}, "app_name must be 3 to 100 characters"),
    ({"app_name": "   "}, "app_name must be 3 to 100 characters"),
    ({"email": "nobody"}, "email must be a valid e-mail address"),
    ({"email": None}, "email is required"),
    ({"website": "ftp:/x"}, "website must be a valid URL"),
    ({"description": "d" * 501}, "description must be at most 500 characters"),
    ({"client_auth_key": "short"}, "client_auth_key must be 16 to 500 characters"),
    ({"client_auth_key": "k" * 501}, "client_auth_key must be 16 to 500 characters"),
    ({"client_auth_key": ["k" * 16]}, "client_auth_key must be a string"),
])
def test_bad_fields_are_400_naming_the_field(client, logged_in, strict, change, error):
    body = {**GOOD, **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = logged_in.post("/admin/api/apps/onboard", json=body)
    assert (response.status_code, response.get_json()) == (400, {"error": error})
    assert _apps() == 0


def test_the_console_page_onboards_and_shows_the_credentials_once(client, logged_in, strict):
    assert 'id="onboard-open"' in client.get("/admin/apps").get_data(as_text=True)
    page = client.get("/admin/apps/onboard")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    suggested = re.search(r'id="onboard-client-key"[^>]*value="([^"]+)"',
                          page.get_data(as_text=True)).group(1)
    assert len(suggested) >= 16
    form = {**GOOD, "client_auth_key": suggested, "app_name": "<b>Acme</b>"}
    response = logged_in.post("/admin/api/apps/onboard", data=form, headers=HX)
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    app_id = re.search(r'id="onboarded-app-id">([^<]+)<', html).group(1)
    token = re.search(r'id="onboarded-token">([^<]+)<', html).group(1)
    assert re.search(r'id="onboarded-client-key">([^<]+)<', html).group(1) == suggested
    assert "&lt;b&gt;Acme&lt;/b&gt; is onboarded" in html and "<b>Acme</b>" not in html
    assert bcrypt.checkpw(token.encode(), _app_row(app_id)["token_hash"].encode())
    unsafe = logged_in.post("/admin/api/apps/onboard",
                            data={**form, "base_url": "https://10.0.0.1/x"},
                            headers={**HX, "HX-Target": "onboard-form"})
    assert unsafe.status_code == 422
    assert unsafe.headers["HX-Retarget"] == "#onboard-form-error"
    assert "Private IP addresses are not allowed" in unsafe.get_data(as_text=True)


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_admin_onboards(app, role):
    actions, _ = client_as(app, role)
    response = actions.post("/admin/api/apps/onboard", json=GOOD)
    assert response.status_code == 403
    assert response.get_json() == {
        "error": f"Your role ({role}) cannot onboard apps: that needs the admin role"}
    assert actions._client.get("/admin/apps/onboard").status_code == 403
    assert 'id="onboard-open"' not in actions._client.get("/admin/apps").get_data(as_text=True)
    assert _apps() == 0


def test_onboarding_needs_a_login_and_refuses_cross_site(client, logged_in):
    anonymous = client.application.test_client()
    assert anonymous.post("/admin/api/apps/onboard", json=GOOD).status_code == 401
    response = client.post("/admin/api/apps/onboard", json=GOOD,
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert _apps() == 0
