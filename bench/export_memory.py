"""Benchmark: peak memory of streaming a 1,000,000-row CSV export (issue 14).

    .venv/bin/python bench/export_memory.py [--database-url URL] [--redis-url URL]
                                            [--rows 1000000] [--reload] [--format csv|jsonl]

What it does:
1. Creates (if missing) a dedicated database, default `docora_admin_bench_export`, migrates it,
   and loads `--rows` failed links (50 apps, rows/10 repositories, error texts of ~60 bytes,
   one in ten starting with "=" so the formula defusing runs) with INSERT ... SELECT
   generate_series. Skipped when the counts already match; --reload loads again.
2. Builds the app with create_app() on that database (Redis db 14 by default), logs in, and
   downloads GET /admin/api/notifications/failed.csv through the Flask test client with
   buffered=False, counting rows and bytes and throwing each chunk away, as a server writing to a
   socket does.
3. Reports: rows, MB, seconds, rows/s, the peak of Python allocations during the download
   (tracemalloc; --no-trace skips it, for the throughput), and the process's peak RSS before
   and after (ru_maxrss).

A download that held its rows would grow with them (~1 KB per row as dicts: ~1 GB for 1M); a
streamed one stays flat at one batch (2,000 rows).
"""
import argparse
import os
import resource
import secrets
import sys
import time
import tracemalloc
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.failed_list import ensure_database, log  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/docora_admin_bench_export"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
APPS = 50


def load(url, rows, reload):
    from docora_admin import db

    ensure_database(url)
    db.migrate(url)
    with psycopg.connect(url) as conn:
        have = conn.execute("SELECT count(*) FROM app_repositories "
                            "WHERE status = 'failed'").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM app_repositories").fetchone()[0]
        if have == rows == total and not reload:
            log(f"data: {rows:,} failed links already loaded")
            return
        log(f"data: loading {rows:,} failed links")
        conn.execute("TRUNCATE delivery_attempts, bulk_operation_targets, bulk_operations, "
                     "app_delivered_files, snapshot_files, repository_snapshots, "
                     "app_repositories, repositories, apps CASCADE")
        conn.execute("""
            INSERT INTO apps (app_id, app_name, base_url, token_hash, client_auth_key_encrypted)
            SELECT 'app_' || substr(md5('export-app-' || i), 1, 24), 'Export app ' || i,
                   'https://hooks.example/' || i, 'hash', 'x:y:z'
            FROM generate_series(0, %s - 1) i""", (APPS,))
        conn.execute("""
            INSERT INTO repositories (repository_id, github_url, owner, name)
            SELECT 'repo_' || substr(md5('export-repo-' || i), 1, 24),
                   'https://github.com/owner' || i || '/repo' || i, 'owner' || i, 'repo' || i
            FROM generate_series(0, %s - 1) i""", (rows // 10,))
        conn.execute("""
            INSERT INTO app_repositories (app_id, repository_id, status, last_error, retry_count,
                                          updated_at)
            SELECT 'app_' || substr(md5('export-app-' || (i %% %s)), 1, 24),
                   'repo_' || substr(md5('export-repo-' || (i / 10)), 1, 24), 'failed',
                   CASE WHEN i %% 10 = 0 THEN '=HYPERLINK("http://x.example","click") ' || i
                        ELSE 'POST /update → HTTP 500 Internal Server Error after 3 s, #' || i END,
                   5, now() - make_interval(secs => i)
            FROM generate_series(0, %s - 1) i""", (APPS, rows))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) app_repositories")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                              DEFAULT_REDIS_URL))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--no-trace", action="store_true",
                        help="skip tracemalloc (it slows Python down ~2x): for the throughput")
    args = parser.parse_args()

    password = secrets.token_urlsafe(16)
    config = {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
              "SECRET_KEY": secrets.token_hex(32), "ADMIN_USERNAME": "bench",
              "ADMIN_PASSWORD": password, "ENCRYPTION_KEY": secrets.token_hex(32)}
    os.environ.update(config)  # the huey object reads REDIS_URL at import
    load(args.database_url, args.rows, args.reload)
    from docora_admin import create_app

    client = create_app(config).test_client()
    assert client.post("/admin/api/login", json={"username": "bench",
                                                 "password": password}).status_code == 200
    client.get("/admin/api/notifications/failed.csv?search=warm-up-only")  # imports, pool

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not args.no_trace:
        tracemalloc.start()
    started = time.perf_counter()
    response = client.get(f"/admin/api/notifications/failed.{args.format}", buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    lines = size = 0
    for chunk in response.response:
        lines += chunk.count(b"\n")
        size += len(chunk)
    response.close()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if not args.no_trace else None
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = lines - (1 if args.format == "csv" else 0)
    print(f"export {args.format}: {rows:,} rows, {size / 1e6:,.1f} MB in {elapsed:.1f} s "
          f"({rows / elapsed:,.0f} rows/s)")
    if peak is not None:
        print(f"peak Python allocations during the download (tracemalloc): {peak / 1e6:.1f} MB")
    print(f"peak RSS of the process: {rss_before:.0f} MB before, {rss_after:.0f} MB after")


if __name__ == "__main__":
    main()
