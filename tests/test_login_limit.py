"""Failed logins are limited per source address and per username, counted atomically."""
import threading

import pytest
import redis

from docora_admin import auth as auth_module
from docora_admin import login_limit
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, TEST_REDIS_URL


def _login(app, password, username=ADMIN_USERNAME, address="127.0.0.1"):
    client = app.test_client()
    return client.post("/admin/api/login", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def _counters():
    r = redis.Redis.from_url(TEST_REDIS_URL)
    return {key.decode(): (int(r.get(key)), r.ttl(key))
            for key in r.keys(f"{login_limit.KEY_PREFIX}*")}


def test_parallel_wrong_logins_get_exactly_the_address_limit(app):
    results = []
    start = threading.Barrier(40)

    def attempt():
        start.wait()
        results.append(_login(app, "wrong password").status_code)

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [401] * 5 + [429] * 35
    response = _login(app, ADMIN_PASSWORD)  # the right password waits out the minute too
    assert response.status_code == 429
    assert response.get_json() == {"error": login_limit.ADDRESS_BLOCKED}


def test_many_addresses_are_stopped_at_the_username_limit(app):
    statuses = [_login(app, "wrong password", address=f"10.0.0.{n}").status_code
                for n in range(10) for _ in range(5)]
    assert statuses.count(401) == login_limit.USERNAME_LIMIT == 10
    assert statuses.count(429) == 40
    blocked = _login(app, "wrong password", address="10.0.1.1")
    assert blocked.status_code == 429
    assert blocked.get_json()["error"].startswith(login_limit.USERNAME_BLOCKED_START)
    assert blocked.get_json()["error"].endswith(" s")  # the first delay, not the window
    # The price of a per-username lock: the admin waits too (without a device token)...
    assert _login(app, ADMIN_PASSWORD, address="10.0.1.2").status_code == 429
    # ...while other usernames, from addresses with budget left, are not affected.
    assert _login(app, "x", username="someone", address="10.0.1.3").status_code == 401


def test_windows_expire(app):
    _login(app, "wrong password")
    (address_count, address_ttl), (user_count, user_ttl) = sorted(_counters().values(),
                                                                   key=lambda v: v[1])
    assert address_count == user_count == 1
    assert 0 < address_ttl <= login_limit.ADDRESS_WINDOW_S
    assert login_limit.ADDRESS_WINDOW_S < user_ttl <= login_limit.USERNAME_WINDOW_S


def test_success_clears_the_address_and_forgives_only_itself_for_the_username(app):
    for _ in range(4):
        assert _login(app, "wrong password").status_code == 401
    assert _login(app, ADMIN_PASSWORD).status_code == 200
    counters = _counters()
    assert [key for key in counters if ":addr:" in key] == []
    [(user_count, _)] = [value for key, value in counters.items() if ":user:" in key]
    assert user_count == 4  # the failures stay counted for the username's window
    for _ in range(5):  # the address has its full budget back
        assert _login(app, "wrong password").status_code == 401
    assert _login(app, "wrong password").status_code == 429


@pytest.mark.parametrize("body", [
    '{"username": "\\ud800", "password": "x"}',
    '{"username": "admin", "password": "\\udc00"}',
    "[" * 100_000 + "]" * 100_000,
    '{"username": "admin", "password": ""}',
    '{"username": "admin", "password": 12345}',
    "{broken",
])
def test_malformed_logins_are_400_and_spend_no_budget(app, body):
    client = app.test_client()
    for _ in range(10):
        response = client.post("/admin/api/login", data=body, content_type="application/json")
        assert response.status_code == 400
    assert _counters() == {}
    assert _login(app, ADMIN_PASSWORD).status_code == 200


def test_form_and_api_logins_share_the_limits(app):
    client = app.test_client()
    for _ in range(3):
        assert client.post("/admin/login", data={"username": ADMIN_USERNAME,
                                                 "password": "nope"}).status_code == 401
    assert _login(app, "nope").status_code == 401
    assert _login(app, "nope").status_code == 401
    page = client.post("/admin/login", data={"username": ADMIN_USERNAME, "password": "nope"})
    assert page.status_code == 429
    assert login_limit.ADDRESS_BLOCKED in page.get_data(as_text=True)


def _login_with(client, password, username=ADMIN_USERNAME, address="127.0.0.1"):
    return client.post("/admin/api/login", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def _lock_the_username(app, username=ADMIN_USERNAME):
    """A stranger spread over addresses spends the username's whole budget, in its variants."""
    variants = [username, username.upper(), username.capitalize(), f"  {username} "]
    for n in range(login_limit.USERNAME_LIMIT):
        assert _login(app, "guess", username=variants[n % len(variants)],
                      address=f"10.0.{n}.1").status_code == 401
    assert _login(app, "guess", username=username.swapcase(),
                  address="10.0.99.1").status_code == 429


def test_case_variants_share_one_username_budget(app):
    """Issue 24 M1: Admin, aDmin… each had a budget of their own (320 guesses, not 10)."""
    _lock_the_username(app)
    assert _login(app, ADMIN_PASSWORD, address="10.1.1.1").status_code == 429
    assert len([k for k in _counters() if ":user:" in k and ":device:" not in k
                and not k.endswith(("refusal-noted", ":next"))]) == 1


def test_a_stranger_cannot_lock_the_owner_out_of_their_own_browser(app):
    """Issue 24 M2: the owner's browser carries a device token from an earlier login: while the
    username is locked for everyone else, it keeps a small budget of its own."""
    owner = app.test_client()
    assert _login_with(owner, ADMIN_PASSWORD).status_code == 200
    cookie = owner.get_cookie(auth_module.DEVICE_COOKIE, path="/admin")
    assert cookie is not None and cookie.http_only
    _lock_the_username(app)
    assert _login_with(app.test_client(), ADMIN_PASSWORD, address="10.2.2.2").status_code == 429
    # The owner's browser: a typo spends its own budget, the right password gets in.
    assert _login_with(owner, "typo", address="10.3.3.3").status_code == 401
    assert _login_with(owner, ADMIN_PASSWORD, address="10.3.3.3").status_code == 200
    # A token is for its account only, and a forged one counts for nothing.
    forged = app.test_client()
    forged.set_cookie(auth_module.DEVICE_COOKIE, cookie.value[:-4] + "AAAA", path="/admin")
    assert _login_with(forged, ADMIN_PASSWORD, address="10.4.4.4").status_code == 429
    # The device's budget is small: a stolen cookie is no way around the lock either.
    thief = app.test_client()
    thief.set_cookie(auth_module.DEVICE_COOKIE, owner.get_cookie(auth_module.DEVICE_COOKIE,
                                                          path="/admin").value, path="/admin")
    codes = [_login_with(thief, "guess", address="10.5.5.5").status_code
             for _ in range(login_limit.DEVICE_LIMIT + 1)]
    assert codes == [401] * login_limit.DEVICE_LIMIT + [429]


def test_an_admin_sees_a_locked_account_and_lifts_the_lock(app, auth, client):
    from tests.accounts_helpers import client_as

    _, _ = client_as(app, "viewer", username="viewer1")
    _lock_the_username(app, "viewer1")
    assert login_limit.lock_state("VIEWER1")["locked"] is True
    assert auth.login().status_code == 200
    page = client.get("/admin/accounts/viewer1").get_data(as_text=True)
    assert 'id="login-lock"' in page and "10 failed logins" in page
    assert client.post("/admin/accounts/viewer1/unlock", headers=auth.headers()).status_code \
        == 302
    assert login_limit.lock_state("viewer1") == {"failures": 0, "locked": False,
                                                 "seconds_left": 0, "next_in": 0}
    assert 'id="login-lock"' not in client.get("/admin/accounts/viewer1").get_data(as_text=True)


def test_past_the_limit_attempts_are_slowed_not_walled_off(app):
    """Issue 24 M2: progressive delay. After the username's limit the next attempt is allowed
    DELAY_S later, then twice that, … (not refused for the rest of the 15 minutes)."""
    _lock_the_username(app)
    r = redis.Redis.from_url(TEST_REDIS_URL)
    [next_key] = [k for k in r.keys(f"{login_limit.KEY_PREFIX}user:*:next")]
    wait = int(r.get(next_key)) - int(r.time()[0])
    assert login_limit.DELAY_S - 2 <= wait <= login_limit.DELAY_S
    r.set(next_key, int(r.time()[0]) - 1, keepttl=True)  # as if the 30 s had passed
    assert _login(app, "guess", address="10.9.0.1").status_code == 401  # one more try
    refused = _login(app, "guess", address="10.9.0.2")
    assert refused.status_code == 429
    assert refused.get_json()["error"].endswith(f"try again in {2 * login_limit.DELAY_S} s") \
        or refused.get_json()["error"].endswith(f"try again in {2 * login_limit.DELAY_S - 1} s")
    r.set(next_key, int(r.time()[0]) - 1, keepttl=True)
    assert _login(app, ADMIN_PASSWORD, address="10.9.0.3").status_code == 200  # the owner
