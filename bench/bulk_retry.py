"""Benchmark: bulk retry of N failed links, end to end through the JSON API.

    .venv/bin/python bench/bulk_retry.py [--rows 100000] [--post-rows 1000000]

Seeds N failed links in a database of its own, POSTs /admin/api/retry/all, runs the queued bulk
task in a worker thread (as a consumer thread would; the snapshot jobs it queues are left in the
queue, so this measures "reset and queued"), polls the progress endpoint, and reports:
the POST's answer time, time to completed == total, rows/s, the same with chunk size 1 (on a
smaller N), rows changed after a cancel was acknowledged and how long the cancel took, and the
POST's answer time with --post-rows failed links.
"""
import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_admin_bench_bulk"
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"


def ensure_database(url):
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.pop("dbname")
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info, dbname="postgres"),
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(url, failed, other=0):
    """Fresh tables with `failed` failed links spread over 50 apps, plus `other` synced ones."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE apps, repositories, app_repositories, bulk_operations CASCADE")
        conn.execute("""INSERT INTO apps (app_id, app_name, base_url, token_hash)
                        SELECT 'app_bench_' || g, 'Bench app ' || g, 'http://127.0.0.1:9/', 'x'
                        FROM generate_series(1, 50) g""")
        total = failed + other
        conn.execute("""INSERT INTO repositories (repository_id, github_url, owner, name)
                        SELECT 'repo_bench_' || g, 'file:///nonexistent/' || g, 'bench', 'r' || g
                        FROM generate_series(1, %s) g""", (total,))
        conn.execute("""
            INSERT INTO app_repositories (app_id, repository_id, status, last_error,
                                          retry_count, updated_at)
            SELECT 'app_bench_' || (g %% 50 + 1), 'repo_bench_' || g,
                   CASE WHEN g <= %s THEN 'failed' ELSE 'synced' END,
                   CASE WHEN g <= %s THEN 'POST /create → HTTP 500' END, 5,
                   now() - make_interval(secs => g)
            FROM generate_series(1, %s) g""", (failed, failed, total))
        conn.execute("VACUUM ANALYZE app_repositories")


def build_app(url, redis_url, chunk_size):
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench-secret-key-123456",
           "ADMIN_USERNAME": "bench", "ADMIN_PASSWORD": "bench-password",
           "ENCRYPTION_KEY": "0f" * 32, "BULK_CHUNK_SIZE": str(chunk_size)}
    os.environ.update(env)  # the huey object reads REDIS_URL at import
    from docora_admin import create_app, db

    db.migrate(url)
    app = create_app(env)
    client = app.test_client()
    token = client.post("/admin/api/login", json={"username": "bench",
                                                  "password": "bench-password"}).get_json()
    return app, client, {"X-CSRFToken": token["csrf_token"]}


def failed_count(url):
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM app_repositories WHERE status = 'failed'").fetchone()[0]


def start_worker(huey):
    """Execute the bulk task the POST queued, like a consumer's worker thread."""
    task = None
    while task is None or task.name != "run_bulk_retry":
        task = huey.dequeue()
    thread = threading.Thread(target=huey.execute, args=(task,))
    thread.start()
    return thread


def run(url, redis_url, rows, chunk_size, cancel_after=None):
    from docora_admin.huey_app import huey

    seed(url, rows)
    redis.Redis.from_url(redis_url).flushdb()
    _, client, headers = build_app(url, redis_url, chunk_size)
    started = time.perf_counter()
    response = client.post("/admin/api/retry/all", headers=headers)
    post_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.get_data(as_text=True)
    operation_id = response.get_json()["data"]["operation_id"]
    worker = start_worker(huey)
    result = {"post_ms": post_ms, "rows": rows, "chunk_size": chunk_size}
    polls = []
    cancel_ack = None
    while True:
        t0 = time.perf_counter()
        progress = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
        polls.append((time.perf_counter() - t0) * 1000)
        if cancel_after and cancel_ack is None and time.perf_counter() - started >= cancel_after:
            client.post(f"/admin/api/retry/cancel/{operation_id}", headers=headers)
            cancel_ack = time.perf_counter()
            failed_at_ack = failed_count(url)
        if progress["status"] in ("completed", "cancelled", "failed"):
            break
        time.sleep(0.05)
    done = time.perf_counter()
    worker.join()
    result.update(seconds=done - started, completed=progress["completed"],
                  status=progress["status"], poll_ms_median=statistics.median(polls),
                  queued=huey.pending_count())
    result["rows_per_s"] = progress["completed"] / (done - started)
    if cancel_ack is not None:
        result["cancel_to_stop_s"] = done - cancel_ack
        result["rows_changed_after_cancel_ack"] = failed_at_ack - failed_count(url)
    huey.flush()
    return result


def time_post_only(url, redis_url, failed):
    seed(url, failed)
    redis.Redis.from_url(redis_url).flushdb()
    _, client, headers = build_app(url, redis_url, 100)
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        response = client.post("/admin/api/retry/all", headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
        operation_id = response.get_json()["data"]["operation_id"]
        with psycopg.connect(url, autocommit=True) as conn:  # free the scope for the next try
            conn.execute("UPDATE bulk_operations SET status = 'cancelled' WHERE id = %s",
                         (operation_id,))
    from docora_admin.huey_app import huey
    huey.flush()
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--chunk-one-rows", type=int, default=10_000)
    parser.add_argument("--post-rows", type=int, default=1_000_000)
    parser.add_argument("--only-post", action="store_true",
                        help="only time the POST with --post-rows failed links")
    args = parser.parse_args()
    ensure_database(args.database_url)
    from docora_admin import db
    db.migrate(args.database_url)

    print(f"bulk retry benchmark, {os.cpu_count()} cores; app in-process (Flask test client), "
          "PostgreSQL and Redis real")
    if args.only_post:
        return report_post(args)
    main_run = run(args.database_url, args.redis_url, args.rows, args.chunk_size)
    print(f"\n{args.rows:,} failed, chunk {args.chunk_size}: POST answered in "
          f"{main_run['post_ms']:.1f} ms; completed == total ({main_run['completed']:,}) after "
          f"{main_run['seconds']:.2f} s = {main_run['rows_per_s']:,.0f} rows/s; "
          f"{main_run['queued']:,} snapshot jobs queued; progress poll median "
          f"{main_run['poll_ms_median']:.1f} ms")
    for chunk in (1000,):
        other = run(args.database_url, args.redis_url, args.rows, chunk)
        print(f"{args.rows:,} failed, chunk {chunk}: {other['seconds']:.2f} s = "
              f"{other['rows_per_s']:,.0f} rows/s")
    one = run(args.database_url, args.redis_url, args.chunk_one_rows, 1)
    print(f"{args.chunk_one_rows:,} failed, chunk 1 (per-row): {one['seconds']:.2f} s = "
          f"{one['rows_per_s']:,.0f} rows/s")
    cancelled = run(args.database_url, args.redis_url, args.rows, args.chunk_size,
                    cancel_after=1.0)
    print(f"cancel after 1 s ({args.rows:,} failed, chunk {args.chunk_size}): status "
          f"{cancelled['status']}, {cancelled['completed']:,} reset, stopped "
          f"{cancelled['cancel_to_stop_s'] * 1000:.0f} ms after the cancel was acknowledged, "
          f"rows changed after the acknowledgement: {cancelled['rows_changed_after_cancel_ack']}")
    report_post(args)


def report_post(args):
    samples = time_post_only(args.database_url, args.redis_url, args.post_rows)
    print(f"POST /retry/all with {args.post_rows:,} failed links: "
          f"{', '.join(f'{s:.1f}' for s in samples)} ms (median {statistics.median(samples):.1f})")


if __name__ == "__main__":
    main()
