"""Every response carries the security headers; pages hold no inline script or style."""
import json
import re
from html.parser import HTMLParser

import pytest

from docora_admin.security_headers import CONTENT_SECURITY_POLICY

EXPECTED_CSP = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'",
    "img-src": "'self' data:", "object-src": "'none'", "base-uri": "'self'",
    "form-action": "'self'", "frame-ancestors": "'none'",
}


def _csp(response):
    directives = [d.strip().split(" ", 1) for d in
                  response.headers["Content-Security-Policy"].split(";")]
    return {name: value for name, value in directives}


def _assert_security_headers(response, no_store=True):
    assert _csp(response) == EXPECTED_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    if no_store:
        assert response.headers["Cache-Control"] == "no-store"


def test_policy_constant_matches():
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'self'; script-src 'self'")


@pytest.mark.parametrize("path,status", [
    ("/admin/login", 200), ("/admin/notifications", 302), ("/admin/api/session", 401),
    ("/admin/api/login", 401), ("/admin/nowhere", 302), ("/elsewhere", 404),
    ("/admin/apps/%00", 400),
])
def test_anonymous_responses_carry_headers(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    _assert_security_headers(response, no_store=path.startswith("/admin"))


def test_logged_in_pages_fragments_and_json_carry_headers(client, logged_in, seed):
    app_id, _ = seed.link(seed.app(), seed.repo())
    for path in ("/admin/", "/admin/notifications", "/admin/apps", f"/admin/apps/{app_id}",
                 "/admin/queue", "/admin/operations", "/admin/api/notifications/failed",
                 "/admin/api/retry/estimate", "/admin/bulk-panel"):
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, path
            _assert_security_headers(response)
    error = logged_in.post("/admin/api/retry", json={}, headers={"HX-Request": "true"})
    assert error.status_code == 400
    _assert_security_headers(error)


def test_static_files_keep_their_caching(client):
    with client.get("/admin/static/css/admin.css") as response:
        assert response.status_code == 200
        _assert_security_headers(response, no_store=False)
        assert response.headers.get("Cache-Control") != "no-store"


def test_htmx_is_configured_for_the_csp(client, logged_in):
    html = client.get("/admin/").get_data(as_text=True)
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)[1])
    # Without these htmx injects a <style> element and evaluates hx-on/js: attributes.
    assert config["includeIndicatorStyles"] is False
    assert config["allowEval"] is False


class InlineCodeFinder(HTMLParser):
    """Collects what the CSP would block: inline <script>/<style>, style= and on*= attributes,
    javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if (tag == "script" and "src" not in attrs) or tag == "style":
            self.found.append(f"<{tag}>")
        for name, value in attrs.items():
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")


def inline_code(html):
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder.found


def test_pages_have_no_inline_script_style_or_handlers(client, logged_in, seed):
    app_id, _ = seed.link(seed.app("<b style=x>Acme</b>"), seed.repo(),
                          last_error='<script>x</script><img src=x onerror="y">')
    for path in ("/admin/", "/admin/notifications", "/admin/apps", f"/admin/apps/{app_id}",
                 "/admin/queue", "/admin/operations", "/admin/bulk-panel",
                 "/admin/api/retry/estimate"):
        headers = {"HX-Request": "true"} if path.startswith("/admin/api/") else {}
        html = client.get(path, headers=headers).get_data(as_text=True)
        assert inline_code(html) == [], path
    client.post("/admin/api/logout", headers={"X-CSRFToken": logged_in.csrf_token})
    assert inline_code(client.get("/admin/login").get_data(as_text=True)) == []
    assert inline_code('<p style="x" onclick="y"><script>z</script></p>') == [
        "<p style=...>", "<p onclick=...>", "<script>"]


def test_hsts_once_the_session_cookie_is_secure(client, migrated_database):
    """Issue 24 L1: over HTTPS (SESSION_COOKIE_SECURE=true) browsers are told to stay on it;
    on plain http (development) it would only be ignored, and is not sent."""
    from docora_admin import create_app

    assert "Strict-Transport-Security" not in client.get("/admin/login").headers
    secure = create_app({"SESSION_COOKIE_SECURE": "true"}).test_client()
    for path in ("/admin/login", "/admin/api/session", "/healthz"):
        assert secure.get(path).headers["Strict-Transport-Security"] == "max-age=31536000"
