"""The inputs from issue 10 that used to end in a 500, each now a one-line 4xx that changes
nothing. The sweep over every route is tests/test_hostile_input.py."""
import io
import logging

import pytest
import redis

from docora_admin import log_format
from docora_admin.config import ConfigError, DEFAULT_MAX_REQUEST_BODY_BYTES, load_settings
from tests.conftest import TEST_ENV, TEST_REDIS_URL

DEEP_JSON = "[" * 100_000 + "]" * 100_000
LONE_SURROGATE_LOGIN = '{"username": "\\ud800", "password": "x"}'


def _one_line_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    message = response.get_json()["error"]
    assert message and "\n" not in message
    return message


def _login_failure_keys():
    return redis.Redis.from_url(TEST_REDIS_URL).keys("docora:login-failures:*")


@pytest.mark.parametrize("body,message", [
    (LONE_SURROGATE_LOGIN,
     "Request refused: JSON field 'username' contains a lone surrogate (not valid Unicode text)"),
    (DEEP_JSON, "JSON nested deeper than 32 levels"),
    ('{"username": "admin", "password": ' + "[" * 40 + "]" * 40 + "}",
     "JSON nested deeper than 32 levels"),
    ('{"username": "ad\\u0000min", "password": "x"}',
     "Request refused: JSON field 'username' contains a NUL byte"),
    (b'{"username": "\xff", "password": "x"}', "Request body is not valid UTF-8"),
    ("{not json", "Request body is not valid JSON"),
    ("[1, 2]", "Request body must be a JSON object"),
])
def test_anonymous_login_with_malformed_json_is_400_and_not_counted(client, body, message):
    response = client.post("/admin/api/login", data=body, content_type="application/json")
    assert _one_line_error(response, 400) == message
    assert _login_failure_keys() == []


def test_retry_with_lone_surrogate_is_400(client, logged_in, seed):
    app_id, repository_id = seed.link(seed.app(), seed.repo())
    response = logged_in.post("/admin/api/retry", content_type="application/json",
                              data='{"app_id": "%s", "repository_id": "\\udfff"}' % app_id)
    assert "lone surrogate" in _one_line_error(response, 400)
    assert seed.link_status(app_id, repository_id)["status"] == "failed"


@pytest.mark.parametrize("url", ["/admin/apps/%00", "/admin/bulk-panel?app_id=%00",
                                 "/admin/api/retry/estimate?app_id=%00"])
@pytest.mark.parametrize("hx", [False, True])
def test_nul_in_path_or_query_is_400(client, logged_in, url, hx):
    response = client.get(url, headers={"HX-Request": "true"} if hx else {})
    assert response.status_code == 400
    assert "contains a NUL byte" in response.get_data(as_text=True)


@pytest.mark.parametrize("next_value", ["/admin/%0d%0aSet-Cookie:%20x=1", "/admin/%0a",
                                        "/admin/%09"])
def test_control_characters_in_next_are_400_logged_in_or_not(client, auth, next_value):
    anonymous = client.get(f"/admin/login?next={next_value}")
    assert anonymous.status_code == 400
    assert auth.login().status_code == 200
    logged_in = client.get(f"/admin/login?next={next_value}")
    assert logged_in.status_code == 400
    assert "Request refused: query parameter &#39;next&#39; contains" in logged_in.get_data(
        as_text=True)


def test_form_value_with_control_character_is_400(client):
    response = client.post("/admin/login", data={"username": "admin\x07", "password": "x"})
    assert response.status_code == 400
    assert "form field &#39;username&#39; contains a control character (U+0007)" in (
        response.get_data(as_text=True))
    assert _login_failure_keys() == []


def test_path_that_is_not_utf8_is_400(client, logged_in):
    # A real server hands PATH_INFO over as latin-1 of the raw bytes; %ff is not UTF-8.
    response = client.get("/admin/apps/x", environ_overrides={"PATH_INFO": "/admin/apps/\xff"},
                          headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "the path is not valid UTF-8" in response.get_data(as_text=True)
    assert client.get("/admin/notifications?search=%ff").status_code == 400


def test_oversized_body_is_413_json_before_login(client):
    body = b"x" * (DEFAULT_MAX_REQUEST_BODY_BYTES + 1)
    response = client.post("/admin/api/login", data=body, content_type="application/json")
    message = _one_line_error(response, 413)
    assert message.startswith("Request too large: bodies are limited to 1,048,576 bytes")
    form = client.post("/admin/login", data=body,
                       content_type="application/x-www-form-urlencoded")
    assert form.status_code == 413
    assert _login_failure_keys() == []


def test_oversized_chunked_body_is_413_while_reading(client):
    """Without a Content-Length (chunked), the limit stops the read itself."""
    body = io.BytesIO(b'{"username": "' + b"a" * (DEFAULT_MAX_REQUEST_BODY_BYTES + 10) + b'"}')
    response = client.post("/admin/api/login", input_stream=body, content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    assert _one_line_error(response, 413).startswith("Request too large")


def test_too_many_multipart_fields_is_413(client):
    response = client.post("/admin/login", data={f"f{i}": "x" for i in range(1001)},
                           content_type="multipart/form-data")
    assert response.status_code == 413


def test_refusal_is_logged_on_one_line(client, caplog):
    caplog.set_level(logging.INFO, logger="docora_admin.request_guard")
    client.get("/admin/apps/x%0aINFO:docora_admin.auth:admin%20logged%20in")
    [record] = [r for r in caplog.records if r.name == "docora_admin.request_guard"]
    line = log_format.OneLineFormatter().format(record)
    assert "\n" not in line
    assert "refused GET /admin/apps/x\\nINFO:docora_admin.auth:admin logged in" in line


@pytest.mark.no_services
def test_body_limit_setting():
    assert load_settings(TEST_ENV).max_request_body_bytes == 1024 * 1024
    assert load_settings({**TEST_ENV, "MAX_REQUEST_BODY_BYTES": "65536"}
                         ).max_request_body_bytes == 65536
    with pytest.raises(ConfigError, match="^MAX_REQUEST_BODY_BYTES must be between"):
        load_settings({**TEST_ENV, "MAX_REQUEST_BODY_BYTES": "10"})


def test_a_form_that_is_not_utf8_is_400_and_spends_no_login_attempt(app):
    """Issue 24: werkzeug kept an invalid byte as the text "%FF", so such a form passed and
    counted as a login attempt for the username "a%FFb"."""
    import redis

    from docora_admin import login_limit
    from tests.conftest import TEST_REDIS_URL

    client = app.test_client()
    response = client.post("/admin/login", data=b"username=a%FFb&password=x",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "the form is not valid UTF-8" in response.get_data(as_text=True)
    assert redis.Redis.from_url(TEST_REDIS_URL).keys(f"{login_limit.KEY_PREFIX}*") == []
    ok = client.post("/admin/login", data="username=caf%C3%A9&password=x",
                     content_type="application/x-www-form-urlencoded")
    assert ok.status_code == 401  # valid UTF-8: an ordinary failed login
