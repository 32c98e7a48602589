"""Failures grouped by cause: the normalisation (Python and the migration's SQL twin agree), the
summary the statement triggers keep, and GET /admin/api/notifications/causes with the failed
list's filters."""
import pytest

from docora_admin import db
from docora_admin.error_causes import normalise

CASES = [
    ("timeout after 5 s", "timeout after N s"),
    ("timeout after 30.5 s", "timeout after N s"),
    ("HTTP 413 Payload Too Large", "HTTP 413 Payload Too Large"),
    ("POST /create → HTTP 500", "POST /create → HTTP 500"),
    ("Request failed with status code 404", "Request failed with status code 404"),
    ("fatal: repository 'https://github.com/acme/x.git/' not found",
     "fatal: repository '<url>' not found"),
    ("git clone /tmp/pytest-of-x/pytest-12/repo0 failed: exit 128",
     "git clone <path> failed: exit N"),
    ("connect ECONNREFUSED 127.0.0.1:8080", "connect ECONNREFUSED N:N"),
    ("commit 3f2a9c1d0e4b5a6978 missing", "commit <hash> missing"),
    ("app_0123456789abcdef01234567 gone", "<id> gone"),
    ("job 550e8400-e29b-41d4-a716-446655440000 lost", "job <id> lost"),
    ("sha256 mismatch on file 12", "sha256 mismatch on file N"),
    ("TLS handshake failed", "TLS handshake failed"),
    ("connection refused: hooks.globex.example", "connection refused: <host>"),
    ("getaddrinfo ENOTFOUND hooks12.acme.example.com:443", "getaddrinfo ENOTFOUND <host>:N"),
    ("git 2.39.2 failed on README.md", "git N failed on README.md"),
    ("  spaced\n\tout   error  ", "spaced out error"),
    ("x" * 5000, "x" * 200),
    (None, "Unknown error"),
    ("   ", "Unknown error"),
    ("Ünïcödé 3 fehler", "Ünïcödé N fehler"),
]


@pytest.mark.no_services
@pytest.mark.parametrize("error, cause", CASES)
def test_normalise(error, cause):
    assert normalise(error) == cause
    assert normalise(cause) == cause  # a cause is its own cause: it can be sent back as one


def test_the_database_computes_the_same_cause(app):
    with db.connection() as conn:
        for error, cause in CASES:
            got = conn.execute("SELECT docora_error_cause(%s) AS c", (error,)).fetchone()["c"]
            assert got == cause, error


def _summary():
    with db.connection() as conn:
        return {(r["cause"], r["app_id"]): r["links"] for r in conn.execute(
            "SELECT cause, app_id, sum(links) AS links FROM failure_causes GROUP BY 1, 2 "
            "HAVING sum(links) <> 0").fetchall()}


def _recounted():
    with db.connection() as conn:
        return {(r["cause"], r["app_id"]): r["n"] for r in conn.execute(
            "SELECT error_cause AS cause, app_id, count(*) AS n FROM app_repositories "
            "WHERE status = 'failed' AND dismissed_at IS NULL GROUP BY 1, 2").fetchall()}


def test_summary_follows_every_change_of_the_links(app, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    seed.failed_links(acme, 3, last_error="timeout after 5 s")
    seed.failed_links(globex, 2, last_error="timeout after 30 s")
    seed.link(acme, seed.repo(), last_error="HTTP 413 Payload Too Large")
    seed.link(acme, seed.repo(), status="synced")
    assert _summary() == {("timeout after N s", acme): 3, ("timeout after N s", globex): 2,
                          ("HTTP 413 Payload Too Large", acme): 1}
    with db.connection() as conn:
        # A link leaves failed, another changes error, another is dismissed, one is deleted.
        conn.execute("UPDATE app_repositories SET status = 'pending_snapshot', last_error = NULL "
                     "WHERE id = (SELECT id FROM app_repositories WHERE app_id = %s "
                     "AND status = 'failed' ORDER BY id LIMIT 1)", (globex,))
        conn.execute("UPDATE app_repositories SET last_error = 'TLS handshake failed' "
                     "WHERE app_id = %s AND error_cause = 'HTTP 413 Payload Too Large'", (acme,))
        conn.execute("UPDATE app_repositories SET status = 'failed', last_error = 'timeout 9 s'"
                     " WHERE app_id = %s AND status = 'synced'", (acme,))
        conn.execute("UPDATE app_repositories SET dismissed_at = now() WHERE id = (SELECT id "
                     "FROM app_repositories WHERE app_id = %s AND error_cause = "
                     "'timeout after N s' ORDER BY id LIMIT 1)", (acme,))
        conn.execute("DELETE FROM app_repositories WHERE app_id = %s AND status = 'failed' "
                     "AND error_cause = 'timeout N s'", (acme,))
    assert _summary() == _recounted() == {
        ("timeout after N s", acme): 2, ("timeout after N s", globex): 1,
        ("TLS handshake failed", acme): 1}
    with db.connection() as conn:
        conn.execute("DELETE FROM app_repositories WHERE app_id = %s", (globex,))
    assert ("timeout after N s", globex) not in _summary()
    assert _summary() == _recounted()


def test_leaving_failed_ends_a_dismissal(app, seed):
    acme = seed.app("Acme")
    seed.link(acme, seed.repo(), last_error="gone")
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET dismissed_at = now(), dismissed_by = 'x', "
                     "dismiss_reason = 'y'")
        conn.execute("UPDATE app_repositories SET status = 'pending_snapshot'")
        row = conn.execute("SELECT dismissed_at, dismissed_by, dismiss_reason "
                           "FROM app_repositories").fetchone()
    assert row == {"dismissed_at": None, "dismissed_by": None, "dismiss_reason": None}


def _causes(client, **args):
    response = client.get("/admin/api/notifications/causes", query_string=args)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["data"]


def test_grouped_view_counts_apps_and_times(client, logged_in, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    seed.failed_links(acme, 3, last_error="timeout after 5 s")      # 0, 1, 2 minutes old
    seed.link(globex, seed.repo(), last_error="timeout after 30 s", age_minutes=10)
    seed.link(globex, seed.repo(), last_error="git: repository not found", age_minutes=4)
    seed.link(globex, seed.repo(), status="synced")
    groups = _causes(client)
    assert [(g["cause"], g["count"]) for g in groups] == [("timeout after N s", 4),
                                                          ("git: repository not found", 1)]
    timeout = groups[0]
    assert [(a["app_name"], a["count"]) for a in timeout["apps"]] == [("Acme", 3), ("Globex", 1)]
    assert timeout["first_seen"] < timeout["last_seen"]
    with db.connection() as conn:
        oldest, newest = conn.execute(
            "SELECT min(updated_at) AS lo, max(updated_at) AS hi FROM app_repositories "
            "WHERE error_cause = 'timeout after N s'").fetchone().values()
    assert (timeout["first_seen"], timeout["last_seen"]) == (oldest.isoformat(),
                                                             newest.isoformat())
    # The same filters as the failed list: an app, a search, a failed-since range.
    assert [(g["cause"], g["count"]) for g in _causes(client, app_id=globex)] == [
        ("git: repository not found", 1), ("timeout after N s", 1)]
    assert [(g["cause"], g["count"]) for g in _causes(client, search="Acme")] == [
        ("timeout after N s", 3)]
    assert [(g["cause"], g["count"]) for g in _causes(client, search="not found")] == [
        ("git: repository not found", 1)]
    since = (oldest.replace(microsecond=0)).isoformat()
    with_range = _causes(client, failed_until=newest.isoformat(), failed_since=since)
    assert sum(g["count"] for g in with_range) == 4  # the newest is excluded by until
    # Each group's count is what the failed list (and so a retry of the group) counts.
    listed = client.get("/admin/api/notifications/failed",
                        query_string={"cause": "timeout after 5 s"}).get_json()["data"]
    assert listed["pagination"]["total"] == 4


@pytest.mark.parametrize("args, message", [
    ({"q": "x"}, "unknown query parameter 'q'"),
    ({"failed_since": "yesterday"}, "failed_since must be"),
    ({"search": "x" * 201}, "search must be"),
])
def test_grouped_view_bad_filters_are_400(client, logged_in, args, message):
    response = client.get("/admin/api/notifications/causes", query_string=args)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(message)


def test_causes_page_lists_groups_escaped(client, logged_in, seed):
    acme = seed.app("Acme")
    seed.link(acme, seed.repo(), last_error="<script>alert(1)</script> HTTP 502")
    page = client.get("/admin/causes")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "&lt;script&gt;alert(N)&lt;/script&gt; HTTP 502" in html
    assert "<script>alert" not in html
    assert "Retry this group" in html and "Dismiss this group" in html
    empty = client.get("/admin/causes", query_string={"search": "nothing like this"})
    assert "No failed notifications match this filter" in empty.get_data(as_text=True)


def test_summary_stays_exact_under_concurrent_writers(app, seed):
    import threading

    acme, globex = seed.app("Acme"), seed.app("Globex")
    links = (seed.failed_links(acme, 12, last_error="timeout after 5 s")
             + seed.failed_links(globex, 12, last_error="timeout after 7 s"))
    errors = []

    def flip(mine):
        try:
            for round_ in range(6):
                with db.connection() as conn:
                    for app_id, repository_id in mine:
                        conn.execute(
                            "UPDATE app_repositories SET status = CASE WHEN status = 'failed' "
                            "THEN 'pending_snapshot' ELSE 'failed' END, last_error = %s "
                            "WHERE app_id = %s AND repository_id = %s",
                            (f"timeout after {round_} s", app_id, repository_id))
        except Exception as exc:  # reported below: a deadlock would land here
            errors.append(repr(exc.__cause__ or exc))

    # Each thread flips links of both apps, in opposite orders, in one transaction per round.
    threads = [threading.Thread(target=flip, args=(links[n::4][::(-1) ** n],))
               for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _summary() == _recounted()
    # The rows written side by side merge back into one per group, the counts unchanged.
    from docora_admin.services.console import failure_causes
    failure_causes.compact_summary()
    with db.connection() as conn:
        rows = conn.execute("SELECT count(*) AS n FROM failure_causes").fetchone()["n"]
    assert rows == len(_recounted()) and _summary() == _recounted()
