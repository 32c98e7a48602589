"""/healthz and /readyz: no login, no session, a short answer; /readyz 503 naming what is down."""
import redis

from tests.conftest import TEST_REDIS_URL
from tests.processes import wait_for
from tests.test_outages import proxied_web  # noqa: F401  (fixture)


def _session_keys():
    return redis.Redis.from_url(TEST_REDIS_URL).keys("docora:session:*")


def test_healthz_answers_without_login_or_session(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert _session_keys() == []


def test_readyz_ready_when_both_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready",
                                   "checks": {"postgresql": "ok", "redis": "ok"}}
    assert "Set-Cookie" not in response.headers
    assert _session_keys() == []


def test_probes_ignore_a_session_cookie(logged_in, client):
    """A probe carrying a cookie neither reads nor refreshes that session."""
    before = {key: redis.Redis.from_url(TEST_REDIS_URL).ttl(key) for key in _session_keys()}
    response = client.get("/healthz")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert set(_session_keys()) == set(before)


def test_readyz_names_what_is_down(proxied_web):  # noqa: F811
    session, pg_proxy, redis_proxy = proxied_web
    status, body, _ = session.request("GET", "/readyz")
    assert status == 200, body

    redis_proxy.cut()
    status, body, elapsed = session.request("GET", "/readyz")
    assert status == 503
    assert body["failed"] == ["redis"] and body["checks"]["postgresql"] == "ok"
    assert "redis" in body["error"] and elapsed < 2.0
    status, body, _ = session.request("GET", "/healthz")
    assert status == 200  # alive, whatever Redis does

    pg_proxy.cut()
    status, body, elapsed = session.request("GET", "/readyz")
    assert status == 503 and body["failed"] == ["postgresql", "redis"] and elapsed < 2.0

    redis_proxy.restore()
    status, body, _ = session.request("GET", "/readyz")
    assert status == 503 and body["failed"] == ["postgresql"]

    pg_proxy.restore()
    # The pool reconnects in the background, with its own back-off.
    wait_for(lambda: session.request("GET", "/readyz")[0] == 200, timeout=15, interval=0.5,
             message="/readyz to be 200 again")
