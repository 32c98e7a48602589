"""Benchmark: the in-progress view and the filtered estimate at 1,000,000 links (issue 9).

    .venv/bin/python bench/in_progress_list.py [--database-url URL] [--redis-url URL] [--reload]
                                               [-n 30] [--warmup 3] [--attempt-log ROWS]
                                               [--breakdown] [--explain] [--check]

The data set is bench/failed_list.py's (same loader, same database format): 1,000,000 links over
50 apps and 100,000 repositories; 100,000 failed; ~108,000 in progress (~90,000 pending_snapshot:
a fifth queued and due within the last 10 minutes, four fifths waiting out a backoff after a
failed attempt, with last_error and next_attempt_at within the next hour; ~18,000 scanning with
a lease ending within 60 s); the rest synced. See failed_list.py's docstring. Loading is skipped
when the database already holds it (default docora_bench_outcomes_list; --reload loads again).

--attempt-log ROWS makes the attempt log (delivery_attempts) hold ROWS rows first (0: empty it;
default: leave it as it is): five attempts for each failed link, one or more for in-progress and
synced links, a third of them from 20 bulk operations. Issue 9 asks that at 1M links the log does
not slow the list: run once with --attempt-log 0 and once with 1000000 and compare.

Every case is timed like failed_list.py does: wall clock around the Flask test client's .get()
(in-process WSGI: session lookup in Redis, all SQL, rendering / JSON; no network), -n requests
after --warmup warm-ups, p95 = nearest rank; page size 20.

Cases:
- the in-progress view, HTML /admin/notifications?view=in_progress and JSON
  /admin/api/notifications/in-progress: page 1 (default sort next_attempt_at asc), a deep page
  (4,500: OFFSET 89,980), an app filter, searches (app name, error text, repository owner: each
  matching a few percent or less), sort by app_name and by retry_count; extras (reported, not
  promised, as failed_list.py does for broad searches): sort by repository, next_attempt_at
  desc, a failed-since range, a search matching 13% of the rows. Target p95 <= 100 ms.
- the failed view (HTML /admin/notifications, JSON /admin/api/notifications/failed) with issue
  9's failed-since range, alone and with an app or a search: bench/failed_list.py covers the
  issue 2 cases. Target p95 <= 100 ms.
- the filtered estimate, GET /admin/api/retry/estimate (JSON, and the htmx confirm panel it
  renders for the bulk button) with search=…, app_id=…&failed_since=…, failed_since alone.
  Target p95 <= 100 ms.
- extra: the link page of a link with attempts (JSON /admin/api/links/<app>/<repo>, HTML
  /admin/apps/<app>/links/<repo>), which reads the attempt log.

--check exits 1 when a promised case is over target. --breakdown times each SQL statement of one
request per case; --explain prints EXPLAIN (ANALYZE, BUFFERS) for each.
"""
import argparse
import os
import secrets
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import failed_list  # noqa: E402  (the data set, its loader and the timing helpers)
from failed_list import TARGET_P95_MS, app_id_of, log, p95  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/docora_bench_outcomes_list"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"

LIST_ENDPOINTS = (("HTML", "/admin/notifications", {"view": "in_progress"}),
                  ("JSON", "/admin/api/notifications/in-progress", {}))
FAILED_ENDPOINTS = (("HTML", "/admin/notifications", {}),
                    ("JSON", "/admin/api/notifications/failed", {}))
ESTIMATE_ENDPOINTS = (("HTML", "/admin/api/retry/estimate", {"HX-Request": "true"}),
                      ("JSON", "/admin/api/retry/estimate", {}))


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M")


def list_cases():
    """(name, query parameters, promised)."""
    heavy, northwind = app_id_of(0), app_id_of(failed_list.NORTHWIND)
    since = _iso(datetime.now(timezone.utc) - timedelta(days=7))
    return [
        ("page 1 (next_attempt_at asc)", {}, True),
        ("deep page 4500 (OFFSET 89,980)", {"page": 4500}, True),
        ("app filter (heavy app)", {"app_id": heavy}, True),
        ("search app name 'Northwind'", {"search": "Northwind"}, True),
        ("search error text 'certificate' (~1%)", {"search": "certificate"}, True),
        ("search repo owner 'org0042'", {"search": "org0042"}, True),
        ("sort by app_name, page 1", {"sort_by": "app_name", "sort_order": "asc"}, True),
        ("sort by retry_count desc, page 1", {"sort_by": "retry_count", "sort_order": "desc"},
         True),
        ("extra: sort by repository, page 1", {"sort_by": "repository"}, False),
        ("extra: next_attempt_at desc, page 1", {"sort_order": "desc"}, False),
        ("extra: failed_since 7 days", {"failed_since": since}, False),
        ("extra: search 'timeout' (~13%)", {"search": "timeout"}, False),
        ("extra: app 'Northwind' + search 'timeout'", {"app_id": northwind,
                                                       "search": "timeout"}, False),
    ]


def failed_filter_cases():
    """The failed view with issue 9's new filter (a failed-since range): its page also counts the
    in-progress links matching the same filter."""
    heavy = app_id_of(0)
    now = datetime.now(timezone.utc)
    return [
        ("failed_since 7 days", {"failed_since": _iso(now - timedelta(days=7))}, True),
        ("app_id + failed_since 15 days", {"app_id": heavy,
                                          "failed_since": _iso(now - timedelta(days=15))}, True),
        ("search 'certificate' + failed_since 15 days",
         {"search": "certificate", "failed_since": _iso(now - timedelta(days=15))}, True),
    ]


def estimate_cases():
    heavy = app_id_of(0)
    now = datetime.now(timezone.utc)
    return [
        ("search 'certificate' (1%)", {"search": "certificate"}, True),
        ("search 'Northwind' (app name)", {"search": "Northwind"}, True),
        ("search 'timeout' (18%)", {"search": "timeout"}, True),
        ("app_id + failed_since 15 days", {"app_id": heavy,
                                          "failed_since": _iso(now - timedelta(days=15))}, True),
        ("failed_since 7 days", {"failed_since": _iso(now - timedelta(days=7))}, True),
        ("since 20 days + until 10 days", {"failed_since": _iso(now - timedelta(days=20)),
                                           "failed_until": _iso(now - timedelta(days=10))}, True),
        ("search 'HTTP 500' (24%) + since 15 days",
         {"search": "HTTP 500", "failed_since": _iso(now - timedelta(days=15))}, True),
        ("extra: no filter", {}, False),
    ]


def ensure_attempt_log(url, rows):
    """Make delivery_attempts hold `rows` rows (None: leave it)."""
    if rows is None:
        return
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM delivery_attempts").fetchone()[0]
        if have == rows:
            log(f"attempt log already holds {rows:,} rows")
            return
        t0 = time.perf_counter()
        conn.execute("TRUNCATE delivery_attempts")
        if rows:
            # Attempt k of every link with k attempts, in time order of finishing: failed links
            # have 5 (the last one gave up), pending ones retry_count, scanning and synced one;
            # rounds of attempts are added until `rows` is reached.
            conn.execute("""
                INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause,
                                               operation_id, started_at, finished_at, outcome,
                                               link_status, error, http_status, files_sent,
                                               bytes_sent)
                SELECT id, app_id, repository_id, attempt, coalesce(retry_cause, 'scheduler'),
                       retry_operation_id, finished - interval '2 s', finished,
                       CASE WHEN status = 'failed' OR attempt < last THEN 'failed'
                            ELSE 'delivered' END,
                       CASE WHEN status = 'failed' AND attempt = last THEN 'failed'
                            WHEN status = 'synced' AND attempt = last THEN 'synced'
                            ELSE 'pending_snapshot' END,
                       CASE WHEN status = 'failed' OR attempt < last THEN last_error END,
                       CASE WHEN status = 'failed' OR attempt < last THEN 500 END,
                       10, 200000
                FROM (
                    SELECT ar.*, a.attempt, l.last,
                           ar.updated_at - (l.last - a.attempt) * interval '1 minute' AS finished
                    FROM app_repositories ar
                    CROSS JOIN LATERAL (
                        SELECT CASE ar.status WHEN 'failed' THEN 5
                               WHEN 'pending_snapshot' THEN greatest(1, ar.retry_count)
                               ELSE 1 END) l(last)
                    CROSS JOIN LATERAL generate_series(1, l.last) a(attempt)
                    ORDER BY finished
                    LIMIT %s
                ) s
            """, (rows,))
            conn.execute("VACUUM (ANALYZE) delivery_attempts")
        have = conn.execute("SELECT count(*) FROM delivery_attempts").fetchone()[0]
        log(f"attempt log: {have:,} rows ({time.perf_counter() - t0:.1f} s)")


def a_link_with_attempts(url):
    with psycopg.connect(url) as conn:
        # A failed link whose five attempts are all in the log.
        row = conn.execute("""SELECT app_id, repository_id FROM delivery_attempts
                              WHERE link_status = 'failed' ORDER BY id DESC LIMIT 1""").fetchone()
        if row is None:
            row = conn.execute("SELECT app_id, repository_id FROM app_repositories "
                               "WHERE status = 'failed' LIMIT 1").fetchone()
    return row


def time_case(client, endpoints, params, n, warmup):
    cells = {}
    for label, path, extra in endpoints:
        headers = extra if path.endswith("estimate") else {}
        query = params if path.endswith("estimate") else {**extra, **params}
        samples = []
        for i in range(warmup + n):
            t0 = time.perf_counter()
            response = client.get(path, query_string=query, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != 200:
                sys.exit(f"GET {path} {query} → {response.status_code}: "
                         f"{response.get_data(as_text=True)[:300]}")
            if i >= warmup:
                samples.append(elapsed)
        cells[label] = (statistics.median(samples), p95(samples), response)
    return cells


def record_statements(client, endpoints, params):
    out = {}
    for label, path, extra in endpoints:
        headers = extra if path.endswith("estimate") else {}
        query = params if path.endswith("estimate") else {**extra, **params}
        with failed_list.StatementRecorder() as recorder:
            client.get(path, query_string=query, headers=headers)
        out[label] = recorder.statements
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                              DEFAULT_REDIS_URL))
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("-n", "--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--attempt-log", type=int, default=None,
                        help="make the attempt log hold this many rows first (0 empties it)")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--only", choices=("list", "failed", "estimate", "link"), default=None)
    args = parser.parse_args()

    have, indexes, pg_settings, migrations = failed_list.prepare_database(args.database_url,
                                                                          args.reload)
    ensure_attempt_log(args.database_url, args.attempt_log)
    with psycopg.connect(args.database_url) as conn:
        in_progress, log_rows = conn.execute("""
            SELECT (SELECT count(*) FROM app_repositories
                    WHERE status IN ('pending_snapshot', 'scanning')),
                   (SELECT count(*) FROM delivery_attempts)""").fetchone()

    password = secrets.token_urlsafe(16)
    config = {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
              "SECRET_KEY": secrets.token_hex(32), "ADMIN_USERNAME": "bench",
              "ADMIN_PASSWORD": password, "ENCRYPTION_KEY": secrets.token_hex(32)}
    os.environ.update(config)
    from docora_admin import create_app

    app = create_app(config)
    client = app.test_client()
    response = client.post("/admin/api/login", json={"username": "bench", "password": password})
    if response.status_code != 200:
        sys.exit(f"login failed: {response.status_code} {response.get_data(as_text=True)}")

    sections = []
    if args.only in (None, "list"):
        sections.append(("in-progress view", LIST_ENDPOINTS, list_cases()))
    if args.only in (None, "failed"):
        sections.append(("failed view with a failed-since range", FAILED_ENDPOINTS,
                         failed_filter_cases()))
    if args.only in (None, "estimate"):
        sections.append(("filtered estimate GET /admin/api/retry/estimate (HTML = htmx confirm "
                         "panel)", ESTIMATE_ENDPOINTS, estimate_cases()))
    if args.only in (None, "link"):
        app_id, repository_id = a_link_with_attempts(args.database_url)
        sections.append(("extra: link page (reads the attempt log)", (
            ("HTML", f"/admin/apps/{app_id}/links/{repository_id}", {}),
            ("JSON", f"/admin/api/links/{app_id}/{repository_id}", {})),
            [("a failed link with attempts", {}, False)]))

    results = []
    for title, endpoints, cases in sections:
        for name, params, promised in cases:
            cells = time_case(client, endpoints, params, args.requests, args.warmup)
            body = cells["JSON"][2].get_json()
            if isinstance(body["data"], dict) and "pagination" in body["data"]:
                body = body["data"]  # a list: {data: {data, pagination}}
            if "pagination" in body:
                rows, total = len(body["data"]), body["pagination"]["total"]
                if not rows:
                    sys.exit(f"case {name!r} returned no rows")
            elif isinstance(body["data"], dict) and "total" in body["data"]:
                rows, total = None, body["data"]["total"]
            else:
                rows, total = None, body["data"].get("attempts_total")
            row = {"section": title, "case": name, "promised": promised, "rows": rows,
                   "total": total, **{k: v[:2] for k, v in cells.items()}}
            if args.breakdown or args.explain:
                row["statements"] = record_statements(client, endpoints, params)
            results.append(row)
            log(f"  {title[:20]} / {name}: HTML p95 {row['HTML'][1]:.1f} ms, "
                f"JSON p95 {row['JSON'][1]:.1f} ms")

    print()
    print(f"{have[2]:,} app_repositories ({have[3]:,} failed, {in_progress:,} in progress), "
          f"{have[0]} apps, {have[1]:,} repositories; attempt log {log_rows:,} rows")
    print(f"database {args.database_url}  redis {args.redis_url}  {os.cpu_count()} CPUs  "
          + ", ".join(f"{k}={v}" for k, v in sorted(pg_settings.items())))
    print(f"migrations: {', '.join(migrations)}")
    print(f"{args.requests} timed requests per cell after {args.warmup} warm-ups; server time "
          f"(Flask test client, in-process); target p95 ≤ {TARGET_P95_MS:.0f} ms")
    missed = []
    for title, _, _ in sections:
        print()
        print(title)
        header = (f"  {'case':<42} {'HTML median':>11} {'HTML p95':>9} {'JSON median':>11} "
                  f"{'JSON p95':>9} {'rows':>5} {'total':>8}  verdict")
        print(header)
        print("  " + "-" * (len(header) - 2))
        for row in (r for r in results if r["section"] == title):
            ok = max(row["HTML"][1], row["JSON"][1]) <= TARGET_P95_MS
            if not ok and row["promised"]:
                missed.append(f"{title[:20]} / {row['case']}")
            rows = "" if row["rows"] is None else row["rows"]
            total = "" if row["total"] is None else f"{row['total']:,}"
            print(f"  {row['case']:<42} {row['HTML'][0]:>11.1f} {row['HTML'][1]:>9.1f} "
                  f"{row['JSON'][0]:>11.1f} {row['JSON'][1]:>9.1f} {rows:>5} {total:>8}  "
                  f"{'ok' if ok else 'over'}{'' if row['promised'] else ' (extra)'}")
    print()
    print("promised cases: " + ("all within target" if not missed
                                else "over target: " + "; ".join(missed)))
    if args.breakdown or args.explain:
        for row in results:
            for label, statements in row["statements"].items():
                print(f"\n== {row['section'][:20]} / {row['case']} [{label}]: "
                      f"{len(statements)} statements, {sum(s[2] for s in statements):.1f} ms "
                      "of SQL")
                with psycopg.connect(args.database_url) as conn:
                    for query, params, ms in statements:
                        text = failed_list._one_line(failed_list._text(conn, query))
                        print(f"  {ms:7.1f} ms  {text}")
                if args.explain:
                    # The pool's connection check is an empty statement: nothing to explain.
                    failed_list.explain(args.database_url, [
                        s for s in statements if isinstance(s[0], str) and s[0].strip()
                        or not isinstance(s[0], str)])
    if args.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
