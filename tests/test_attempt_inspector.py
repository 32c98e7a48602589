"""The attempt inspector (issue 26, item 3): each attempt keeps its last request and the app's
answer, bounded, without secrets, shown on the link page and in its JSON twin; retention clears
them."""
import base64
import dataclasses
import socket

import pytest

from docora_admin import db, runtime
from docora_admin.config import ConfigError, load_settings
from docora_admin.services.delivery import attempt_log, exchange, snapshot
from tests.conftest import TEST_ENV
from tests.test_snapshot import Repo, git_cache, receiver  # noqa: F401 (fixtures)

SECRET = "client-secret-key"  # the app's client auth key (tests/factories.py's default)
DETAIL_COLUMNS = ("request_head", "request_body", "response_head", "response_body",
                  "transport_error")


@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path)
    r.commit({"README.md": "# Docs\n" + "x" * 5000})
    return r


def linked(seed, receiver, repo, base_url=None):
    app_id = seed.app(base_url=base_url or receiver.base_url, auth_key=SECRET)
    receiver.app_id = app_id
    repository_id = seed.repo(url=repo.url)
    seed.link(app_id, repository_id, status="pending_snapshot", retry_count=0)
    return app_id, repository_id


def raw_rows(app_id):
    """Every attempt row of the app, as stored."""
    with db.connection() as conn:
        return conn.execute("SELECT * FROM delivery_attempts WHERE app_id = %s ORDER BY id",
                            (app_id,)).fetchall()


def assert_secret_free(text_or_row, *secrets):
    values = text_or_row.values() if isinstance(text_or_row, dict) else [text_or_row]
    for value in values:
        blob = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
        for secret in secrets:
            assert secret.encode() not in blob, (secret, blob[:200])


def attempts_json(client, app_id, repository_id):
    response = client.get(f"/admin/api/links/{app_id}/{repository_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]["attempts"]


def test_a_delivered_attempt_keeps_its_request_and_answer_without_secrets(
        seed, receiver, repo, logged_in, client):
    port = receiver.server.server_address[1]
    # Credentials and a query in the app's URL, an app that echoes our key and sends its own.
    receiver.answer_body = b'{"echo": "client-secret-key", "see": "https://u:pw1@x.example/"}'
    receiver.answer_headers = [("Set-Cookie", "session=topsecret"),
                               ("Authorization", "Bearer topsecret"), ("X-Trace", "t-1")]
    app_id, repository_id = linked(seed, receiver, repo,
                                   f"http://user:pw0@127.0.0.1:{port}/hooks?token=qsecret")
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    (row,) = raw_rows(app_id)
    assert row["request_sent"] is True
    assert_secret_free(row, SECRET, "topsecret", "pw0", "pw1", "qsecret")
    assert row["request_head"].startswith(f"POST http://127.0.0.1:{port}/hooks/create\n")
    assert "X-Docora-Signature: sha256=" in row["request_head"]
    assert row["request_body_size"] > 5000 and len(row["request_body"]) == 2048

    (attempt,) = attempts_json(client, app_id, repository_id)
    request, response = attempt["request"], attempt["response"]
    assert attempt["exchange_missing"] is None
    assert request["method"] == "POST"
    assert request["url"] == f"http://127.0.0.1:{port}/hooks/create"
    names = dict(request["headers"])
    assert names["X-Docora-App-Id"] == app_id
    assert names["X-Docora-Signature"].startswith("sha256=")
    assert "Accept" not in names and "Expect" not in names  # curl's suppressed defaults
    assert request["body"] == {"size": row["request_body_size"], "excerpt_bytes": 2048,
                               "truncated": True, "encoding": "utf-8",
                               "excerpt": bytes(row["request_body"]).decode()}
    assert (response["status"], response["reason"], response["error"]) == (200, "OK", None)
    headers = dict(response["headers"])
    assert headers["Set-Cookie"] == headers["Authorization"] == exchange.REDACTED
    assert headers["X-Trace"] == "t-1"
    assert response["body"]["encoding"] == "utf-8" and not response["body"]["truncated"]
    assert '"echo": "[redacted]"' in response["body"]["excerpt"]
    page = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert 'class="exchange"' in page and "X-Docora-Signature" in page
    assert_secret_free(str(attempt), SECRET, "topsecret", "pw0", "pw1", "qsecret")
    assert_secret_free(page, SECRET, "topsecret", "pw0", "pw1", "qsecret")


def test_a_huge_answer_is_stored_bounded(seed, receiver, repo, logged_in, client):
    receiver.status = 500
    receiver.answer_body = b"E" * (1 << 20)  # 1 MB
    receiver.answer_headers = [(f"X-Many-{i}", "v" * 1500) for i in range(150)]
    app_id, repository_id = linked(seed, receiver, repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "pending_snapshot"
    (row,) = raw_rows(app_id)
    assert len(row["response_body"]) == 2048 and row["response_body_size"] == 1 << 20
    lines = bytes(row["response_head"]).split(b"\n")
    assert lines[0] == b"HTTP/1.1 500 Internal Server Error"
    assert len(lines) <= exchange.HEADERS_KEPT + 1
    assert max(len(line) for line in lines) <= exchange.HEADER_LINE_BYTES
    (attempt,) = attempts_json(client, app_id, repository_id)
    assert attempt["response"]["status"] == 500
    assert attempt["response"]["body"]["truncated"] is True
    assert attempt["response"]["body"]["size"] == 1 << 20


def test_the_excerpt_size_is_a_setting(seed, receiver, repo, monkeypatch):
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(runtime.settings(), attempt_excerpt_bytes=100))
    receiver.status = 500
    receiver.answer_body = b"E" * 5000
    app_id, repository_id = linked(seed, receiver, repo)
    snapshot.run_snapshot(app_id, repository_id)
    (row,) = raw_rows(app_id)
    assert (len(row["request_body"]), len(row["response_body"])) == (100, 100)
    assert row["response_body_size"] == 5000


def test_excerpt_and_retention_settings_are_bounded():
    env = dict(TEST_ENV)
    settings = load_settings(env)
    assert (settings.attempt_excerpt_bytes, settings.attempt_detail_retention_days,
            settings.attempt_detail_per_link) == (2048, 7, 20)
    for name, bad in (("ATTEMPT_EXCERPT_BYTES", "1000000"), ("ATTEMPT_DETAIL_PER_LINK", "0"),
                      ("ATTEMPT_DETAIL_RETENTION_DAYS", "many")):
        with pytest.raises(ConfigError, match=name):
            load_settings({**env, name: bad})


def test_a_hostile_answer_is_escaped_and_binary_is_shown_safely(seed, receiver, repo, logged_in,
                                                               client):
    receiver.status = 502
    receiver.answer_body = b"<script>alert(1)</script>\x00\xff\xfe"
    receiver.answer_headers = [("X-Evil", "<img src=x onerror=alert(2)>")]
    app_id, repository_id = linked(seed, receiver, repo)
    snapshot.run_snapshot(app_id, repository_id)
    (attempt,) = attempts_json(client, app_id, repository_id)
    body = attempt["response"]["body"]
    assert body["encoding"] == "base64"
    assert base64.b64decode(body["excerpt"]) == receiver.answer_body
    page = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<script>alert" not in page
    assert "not UTF-8 text, shown as base64" in page

    receiver.answer_body = b"<script>alert(3)</script>"
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET status = 'pending_snapshot', "
                     "next_attempt_at = now()")
    snapshot.run_snapshot(app_id, repository_id)
    page = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page and "<script>alert" not in page


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind,expected", [
    ("timeout", "timeout after 1 s on POST /create"),
    ("refused", "connection refused: 127.0.0.1:"),
    ("tls", "TLS"),
])
def test_transport_errors_are_kept_as_the_answer(seed, receiver, repo, logged_in, client, kind,
                                                 expected):
    port = receiver.server.server_address[1]
    base_url = {"timeout": None, "refused": f"http://127.0.0.1:{_closed_port()}/hooks",
                "tls": f"https://127.0.0.1:{port}/hooks"}[kind]
    if kind == "timeout":
        receiver.delay = 2
    app_id, repository_id = linked(seed, receiver, repo, base_url)
    assert snapshot.run_snapshot(app_id, repository_id) == "pending_snapshot"
    (row,) = raw_rows(app_id)
    assert expected in row["transport_error"] and row["request_sent"] is True
    (attempt,) = attempts_json(client, app_id, repository_id)
    assert attempt["response"]["status"] is None
    assert expected in attempt["response"]["error"]
    assert attempt["request"]["url"].endswith("/hooks/create")
    page = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "No answer:" in page


def test_an_attempt_that_sent_nothing_says_so(seed, receiver, repo, tmp_path, logged_in, client):
    app_id = seed.app(base_url=receiver.base_url, auth_key=SECRET)
    repository_id = seed.repo(url=f"file://{tmp_path}/missing.git")
    seed.link(app_id, repository_id, status="pending_snapshot", retry_count=0)
    snapshot.run_snapshot(app_id, repository_id)
    (row,) = raw_rows(app_id)
    assert row["request_sent"] is False and row["request_head"] is None
    (attempt,) = attempts_json(client, app_id, repository_id)
    assert (attempt["request"], attempt["response"], attempt["exchange_missing"]) == \
        (None, None, "not_sent")
    page = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "No request was sent to the app in this attempt." in page


def _log(conn, link_id, app_id, repository_id, days_ago, n=1):
    conn.execute("""
        INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause, started_at,
                                       finished_at, outcome, link_status, request_sent,
                                       request_head, request_body, request_body_size,
                                       response_head, response_body, response_body_size)
        SELECT %s, %s, %s, 1, 'retry', now() - make_interval(days => %s),
               now() - make_interval(days => %s), 'failed', 'pending_snapshot', true,
               'POST http://a/create', 'b', 1, 'HTTP/1.1 500 x', 'e', 1
        FROM generate_series(1, %s)
    """, (link_id, app_id, repository_id, days_ago, days_ago, n))


def test_the_sweep_clears_details_past_their_retention(seed, monkeypatch, logged_in, client):
    monkeypatch.setattr(runtime, "_settings", dataclasses.replace(
        runtime.settings(), attempt_detail_retention_days=7, attempt_detail_per_link=3))
    app_id = seed.app()
    old_repo, busy_repo = seed.repo(), seed.repo()
    seed.link(app_id, old_repo)
    seed.link(app_id, busy_repo)
    with db.connection() as conn:
        ids = {r["repository_id"]: r["id"] for r in conn.execute(
            "SELECT id, repository_id FROM app_repositories WHERE app_id = %s", (app_id,))}
        _log(conn, ids[old_repo], app_id, old_repo, days_ago=8)
        _log(conn, ids[old_repo], app_id, old_repo, days_ago=1)
        _log(conn, ids[busy_repo], app_id, busy_repo, days_ago=0, n=5)
    assert attempt_log.prune_details() == 1 + 2
    with db.connection() as conn:
        rows = conn.execute("""
            SELECT repository_id, request_sent, request_head IS NOT NULL AS kept,
                   num_nulls(request_head, request_body, request_body_size, response_head,
                             response_body, response_body_size, transport_error) AS nulls
            FROM delivery_attempts WHERE app_id = %s ORDER BY id
        """, (app_id,)).fetchall()
    assert [(r["repository_id"] == old_repo, r["kept"]) for r in rows] == [
        (True, False), (True, True), (False, False), (False, False), (False, True),
        (False, True), (False, True)]
    assert all(r["request_sent"] for r in rows)  # the attempts stay; only details go
    assert all(r["nulls"] == 7 for r in rows if not r["kept"])
    attempts = attempts_json(client, app_id, old_repo)
    assert [a["exchange_missing"] for a in attempts] == [None, "pruned"]
    page = client.get(f"/admin/apps/{app_id}/links/{old_repo}").get_data(as_text=True)
    assert "no longer kept: they are kept 7 days, for the newest 3 attempts of a link" in page
    assert attempt_log.prune_details() == 0


def test_a_key_across_the_excerpts_end_is_replaced_whole():
    body = b"x" * 2040 + SECRET.encode() + b"tail"
    kept = exchange.stored(exchange.Exchange(
        "http://a/create", [], body, [b"HTTP/1.1 500 x\r\n"], [body], len(body),
        SECRET.encode()), 2048)
    for column in ("request_body", "response_body"):
        assert kept[column] == b"x" * 2040 + b"[redacte", column
    assert kept["request_body_truncated"] and kept["response_body_truncated"]


def test_stored_bounds_headers_however_many_and_however_long():
    lines = [b"HTTP/1.1 500 Internal Server Error\r\n"] + \
        [b"X-H: " + b"v" * 10_000 + b"\r\n"] * 10_000 + [b"\r\n"]
    kept = exchange.stored(exchange.Exchange(
        "http://a/create", ["Authorization: Bearer abc", "X-Docora-Signature: sha256=00"],
        b"{}", lines, [b"x" * 10], 10, SECRET.encode()), 2048)
    head = kept["response_head"].split(b"\n")
    assert len(head) == exchange.HEADERS_KEPT + 1
    assert all(len(line) <= exchange.HEADER_LINE_BYTES for line in head)
    assert "Authorization: [redacted]" in kept["request_head"]
    assert "X-Docora-Signature: sha256=00" in kept["request_head"]
    assert exchange.stored(None) == {"request_sent": False}
