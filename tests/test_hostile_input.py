"""Every rule of app.url_map, logged in (with a valid CSRF token) and anonymous, against a corpus
of hostile values in path variables, query strings, JSON and form bodies, wrong content types and
an oversized body. Never a 5xx; and whenever the answer is 4xx, nothing changed: not a row in any
table, not a Redis key (sessions and login-failure counters aside).

The walk is generic: a route added later is swept without touching this file. A failed link is
seeded and its real ids are the default values of path variables and body fields, so that a
retry endpoint could change something if a hostile value slipped through.
"""
import json
import re
from urllib.parse import quote

import pytest
import redis
from psycopg import sql

from docora_admin import db
from tests.conftest import TEST_REDIS_URL

SESSION_COOKIE = "docora_admin_session"
# Keys a refused request may legitimately touch: its session (refreshed on every request) and
# the login-failure counters (a wrong login is counted, that is the point).
IGNORED_KEY_PREFIXES = (b"docora:session:", b"docora:login-failures:")
# Rows a refused request may legitimately add: the audit trail records failed logins and
# lock-outs (that is its point); any other event on a 4xx is a change.
IGNORED_ROWS = {"audit_events": " WHERE t.action NOT LIKE 'login.%'"}

LONG = "x" * 100_000

# Decoded text, for query values, form values, JSON strings and (percent-encoded) path segments:
# NUL, CR/LF with a forged log line after it, a literal "%0a", a C1 control, a 100 kB string,
# wrong types spelled as text, and a path traversal and non-ASCII text that must pass harmlessly.
HOSTILE_TEXT = [
    "\x00", "x\r\nINFO:docora_admin.auth:forged line", "%0a", "\x85", LONG, "", "-1",
    "99999999999999999999", "[]", "null", "../../etc/passwd", "é😀",
]
# Already percent-encoded, for URLs only: a UTF-8-encoded lone surrogate and a stray byte.
RAW_URL_VALUES = ["%ED%A0%80", "%FF"]
URL_VALUES = [quote(value, safe="") for value in HOSTILE_TEXT] + RAW_URL_VALUES
HOSTILE_NAMES = [quote(name, safe="") for name in ("\x00", "a\r\nb", LONG[:5000])] + ["%FF"]

# JSON field values: every hostile string, lone surrogates, and every wrong type.
HOSTILE_JSON_VALUES = HOSTILE_TEXT + ["\ud800", "a\udfff", 5, True, None, [], {"a": "b"}]

# Names views read from the query string or a body, today and likely tomorrow.
QUERY_NAMES = ("app_id", "repository_id", "operation_id", "next", "page", "limit", "sort_by",
               "sort_order", "search", "settled", "status")
FIELD_NAMES = ("app_id", "repository_id", "username", "password", "next", "csrf_token",
               "role")


def raw_bodies(limit):
    """(content type, body) pairs a client could send that are not the JSON or form we read."""
    return [
        ("application/json", "[" * 100_000 + "]" * 100_000),
        ("application/json", '{"a":' * 50_000 + "1" + "}" * 50_000),
        ("application/json", b'{"app_id": "\xff\xfe", "username": "\xc0\xaf"}'),
        ("application/json", ""),
        ("application/json", "1" * 5000),  # more digits than Python converts to an int
        ("application/json; charset=utf-16", '{"app_id": "x"}'.encode("utf-16")),
        ("text/plain", "app_id=x&repository_id=y"),
        ("application/xml", '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM '
                            '"file:///etc/passwd">]><r><app_id>&e;</app_id></r>'),
        ("multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; "
                                             'name="app_id"\r\n\r\nx\x00\r\n--zz--\r\n'),
        ("multipart/form-data", "no boundary at all"),
        ("application/x-www-form-urlencoded", "app_id=%zz&repository_id=%"),
        ("application/octet-stream", bytes(range(256))),
        (None, "app_id=x"),
        ("application/json", b" " * (limit + 1)),  # over the limit
        ("application/x-www-form-urlencoded", b"a=" + b"b" * limit),
    ]


class State:
    """Fingerprint of everything a request could change: every table's rows, and the Redis keys
    other than sessions and login counters."""

    def __init__(self):
        with db.connection() as conn:
            tables = [row["table_name"] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1")]
            self.query = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                sql.SQL("(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                        "FROM {} t{}) AS {}").format(sql.Identifier(name),
                                                     sql.SQL(IGNORED_ROWS.get(name, "")),
                                                     sql.Identifier(name))
                for name in tables)).as_string(conn)
        self.redis = redis.Redis.from_url(TEST_REDIS_URL)

    def snapshot(self):
        # Prepared: planning its subquery per table cost more than running them (3.1 ms a
        # snapshot unprepared, 2.3 prepared, thousands of snapshots a sweep).
        with db.autocommit_connection() as conn:
            rows = dict(conn.execute(self.query, prepare=True).fetchone())
        keys = sorted(k for k in self.redis.keys() if not k.startswith(IGNORED_KEY_PREFIXES))
        pipe = self.redis.pipeline()
        for key in keys:
            pipe.dump(key)
        return rows, dict(zip(keys, pipe.execute()))


class LoggedInClient:
    """A client logged in through the API, whose session is put back (key and cookie) before
    every request: the sweep's own logouts (and flash-only sessions they leave behind) must not
    turn the rest of the sweep anonymous, and a re-login would cost a password hash each."""

    def __init__(self, app, auth):
        assert auth.login().status_code == 200
        self.client, self.token = auth._client, auth.csrf_token
        self.sid = self.client.get_cookie(SESSION_COOKIE).value
        self.redis = redis.Redis.from_url(TEST_REDIS_URL)
        self.key = f"docora:session:{self.sid}"
        self.saved = self.redis.dump(self.key)

    def open(self, url, method, headers, **kwargs):
        self.redis.restore(self.key, 3_600_000, self.saved, replace=True)
        self.client.set_cookie(SESSION_COOKIE, self.sid)
        return self.client.open(url, method=method,
                                headers={"X-CSRFToken": self.token, **headers}, **kwargs)


class AnonymousClient:
    def __init__(self, app):
        self.app = app

    def open(self, url, method, headers, **kwargs):
        return self.app.test_client().open(url, method=method, headers=headers, **kwargs)


_RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def _url(rule, values):
    """The rule's path with each <converter:name> replaced by values[name] (already encoded)."""
    return _RULE_ARGUMENT.sub(lambda m: values[m.group(1)], rule.rule)


def _requests(rule, method, defaults, limit, with_htmx):
    """Yield (description, url, kwargs) for every hostile variant of one rule and method; URL
    variants also as htmx requests when `with_htmx`."""
    base_values = {name: quote(defaults["path"].get(name, "x"), safe="/")
                   for name in rule.arguments}
    base_url = _url(rule, base_values)
    hx = {"HX-Request": "true", "HX-Target": "bulk-panel", "HX-Current-URL": "http://localhost/"}
    yield "base", base_url, {}
    for value in URL_VALUES:
        # htmx requests take other paths (fragments, HX-Redirect); the 100 kB value is sent once
        # per place, it costs the most.
        variants = [("", {})]
        if with_htmx and len(value) < 1000:
            variants.append((" hx", {"headers": hx}))
        # The 100 kB value goes to one id that reaches SQL and to the redirect target only:
        # in all eleven names it makes a 1.1 MB URL that costs 90 ms a request.
        names = QUERY_NAMES if len(value) < 1000 else ("app_id", "next")
        query = "&".join(f"{name}={value}" for name in names)
        for suffix, kwargs in variants:
            yield f"query={value[:20]}{suffix}", f"{base_url}?{query}", kwargs
            for name in rule.arguments:
                url = _url(rule, {**base_values, name: value})
                yield f"path {name}={value[:20]}{suffix}", url, kwargs
    for name in HOSTILE_NAMES:
        yield f"query name {name[:20]}", f"{base_url}?{name}=1", {}
    if method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    # Half of the fields hostile, the other half valid, then the other way round: each hostile
    # field meets a valid partner (app_id + repository_id, username + password), so the request
    # would go through if the hostile one were accepted.
    valid = defaults["fields"]
    for hostile_names in (FIELD_NAMES[0::2], FIELD_NAMES[1::2]):
        for value in HOSTILE_JSON_VALUES:
            body = {**valid, **{name: value for name in hostile_names}}
            yield (f"json {hostile_names}={str(value)[:20]!r}", base_url,
                   {"data": json.dumps(body), "content_type": "application/json"})
        for value in HOSTILE_TEXT:
            body = {**valid, **{name: value for name in hostile_names}}
            yield f"form {hostile_names}={value[:20]!r}", base_url, {"data": body}
        yield (f"multipart {hostile_names}", base_url,
               {"data": {**valid, **{name: "\x00" for name in hostile_names}},
                "content_type": "multipart/form-data"})
    for content_type, body in raw_bodies(limit):
        kwargs = {"data": body}
        if content_type is not None:
            kwargs["content_type"] = content_type
        yield f"raw {content_type} {len(body)} bytes", base_url, kwargs


def _sweep(app, client, defaults, state, with_htmx):
    """Send every variant to every rule; return the failures found and how many were sent.

    A state-changing method is checked request by request (a 2xx may change things, a 4xx may
    not). A GET may change nothing whatever it answers, so its variants are checked as a group:
    one snapshot per rule instead of one per request keeps the sweep fast."""
    failures, sent = [], 0
    limit = app.config["MAX_CONTENT_LENGTH"]
    before = state.snapshot()
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            safe = method == "GET"
            for description, url, kwargs in _requests(rule, method, defaults, limit, with_htmx):
                kwargs = dict(kwargs)
                headers = kwargs.pop("headers", {})
                response = client.open(url, method, headers, **kwargs)
                status = response.status_code
                response.close()
                sent += 1
                where = f"{method} {rule.rule} [{description}] -> {status}"
                if status >= 500:
                    failures.append(where)
                if safe:
                    continue
                after = state.snapshot()
                if 400 <= status < 500 and after != before:
                    failures.append(f"{where} changed state")
                before = after
            if safe:
                after = state.snapshot()
                if after != before:
                    failures.append(f"{method} {rule.rule}: some variant changed state")
                before = after
    return failures, sent


@pytest.fixture
def defaults(seed):
    app_id, repository_id = seed.link(seed.app("Hostile Input"), seed.repo())
    return {
        "path": {"app_id": app_id, "repository_id": repository_id,
                 "operation_id": "bulk_0123456789abcdef", "filename": "css/admin.css",
                 "username": "hostile-sweep", "handle": "0" * 16},
        "fields": {"app_id": app_id, "repository_id": repository_id,
                   # Not the admin: wrong logins here must not lock the admin username.
                   "username": "hostile-sweep", "password": "not the password",
                   "next": "/admin/", "csrf_token": "",  # empty: the header's token counts
                   "role": "viewer"},
    }


@pytest.mark.usefixtures("empty_queue")
def test_every_route_survives_hostile_input_logged_in(app, auth, defaults):
    failures, sent = _sweep(app, LoggedInClient(app, auth), defaults, State(), with_htmx=True)
    assert failures == []
    assert sent > 800


@pytest.mark.usefixtures("empty_queue")
def test_every_route_survives_hostile_input_anonymous(app, defaults):
    # Anonymous htmx requests all get the same HX-Redirect (test_auth checks it per rule).
    failures, sent = _sweep(app, AnonymousClient(app), defaults, State(), with_htmx=False)
    assert failures == []
    assert sent > 800
