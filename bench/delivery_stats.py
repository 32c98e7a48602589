"""Benchmark: the delivery charts (issue 26, item 4) over a week of attempts.

    .venv/bin/python bench/delivery_stats.py [--attempts 5000000] [--apps 50] [--requests 30]
        [--database-url postgresql://postgres@127.0.0.1:5432/docora_admin_test_charts_bench]
        [--redis-url redis://127.0.0.1:6379/4] [--reload] [--trigger-rows 2000]

1. Seeds its own database (created if missing, migrated): --attempts attempts spread evenly over
   the last 7 days across --apps apps, 90 % delivered with log-normal durations (median ~600 ms)
   and 10 % failed, written in time order in batches of 250,000 rows through the real trigger
   (migration 025), so the rollup is what production would hold; then the hourly prune (minute
   rows past a day go) and VACUUM ANALYZE. Skipped when the database already holds that many
   attempts (--reload forces it).
2. Times GET /admin/api/stats/deliveries through the Flask test client, logged in, for each
   window overall and for one app: median and p95 of --requests requests after 3 warm-ups;
   and the page /admin/charts for 7d.
3. For comparison, the same numbers read from the raw attempt log (count per hour and exact
   percentile_cont) for 1d and 7d: what the rollup saves.
4. The trigger's cost on the write path: --trigger-rows single-attempt INSERTs (autocommit, one
   statement each, as the delivery statements write them) with the trigger and without it
   (ALTER TABLE ... DISABLE TRIGGER, on the bench database only), from 1 thread and from 4
   threads writing the same app (the rollup row they share is locked until each commit).

Prints a table. Numbers depend on the machine; the README quotes a run.
"""
import argparse
import math
import os
import secrets
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_admin_test_charts_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/4"
BATCH = 250_000


def log(message):
    print(message, file=sys.stderr, flush=True)


def ensure_database(url):
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.pop("dbname")
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info, dbname="postgres"),
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(url, attempts, apps):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE apps, delivery_attempts, delivery_stats CASCADE")
        conn.execute("""INSERT INTO apps (app_id, app_name, base_url, token_hash)
                        SELECT 'app_bench_' || lpad(g::text, 3, '0'), 'Bench app ' || g,
                               'http://127.0.0.1:9/', 'x'
                        FROM generate_series(1, %s) g""", (apps,))
        spacing = 7 * 86400.0 / attempts  # seconds between attempts
        started = time.perf_counter()
        for first in range(0, attempts, BATCH):
            last = min(attempts, first + BATCH) - 1
            # Attempt g finishes (attempts - g) * spacing seconds ago; the app and the outcome
            # are spread by g; durations are log-normal (Box-Muller on two hashes of g).
            conn.execute("""
                INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause,
                                               started_at, finished_at, outcome, link_status)
                SELECT gen_random_uuid(), 'app_bench_' || lpad((1 + g %% %(apps)s)::text, 3, '0'),
                       'repo_bench_' || (g %% 5000), 1, 'scheduler',
                       f - make_interval(secs => exp(6.4 + 0.8 * sqrt(-2 * ln(u1)) * cos(2 * pi() * u2)) / 1000),
                       f, CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'delivered' END,
                       CASE WHEN g %% 10 = 0 THEN 'pending_snapshot' ELSE 'synced' END
                FROM generate_series(%(first)s, %(last)s) g,
                     LATERAL (SELECT now() - make_interval(secs => (%(n)s - g) * %(spacing)s) AS f,
                                     greatest(1e-9, (hashint4(g) & 2147483647) / 2147483648.0) AS u1,
                                     (hashint4(g + 7) & 2147483647) / 2147483648.0 AS u2) x
            """, {"apps": apps, "first": first, "last": last, "n": attempts, "spacing": spacing})
            log(f"  seeded {last + 1:,} / {attempts:,} attempts "
                f"({time.perf_counter() - started:.0f} s)")
        conn.execute("""
            DELETE FROM delivery_stats
            WHERE (granularity = 60 AND period_start < now() - interval '1 day')
               OR (granularity = 3600 AND period_start < now() - interval '8 days')""")
        conn.execute("VACUUM ANALYZE delivery_attempts")
        conn.execute("VACUUM ANALYZE delivery_stats")
        return time.perf_counter() - started


def p95(samples):
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def timed(fn, n, warmup=3):
    samples = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        fn()
        if i >= warmup:
            samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), p95(samples)


RAW_1D_7D = """
    SELECT date_bin('1 hour', finished_at, timestamptz 'epoch') AS period,
           count(*) FILTER (WHERE outcome = 'delivered') AS delivered,
           count(*) FILTER (WHERE outcome = 'failed') AS failed,
           percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (
               ORDER BY extract(epoch FROM finished_at - started_at))
               FILTER (WHERE outcome = 'delivered') AS pcts
    FROM delivery_attempts
    WHERE finished_at >= date_bin('1 hour', now(), timestamptz 'epoch') - %s::interval
      AND outcome IN ('delivered', 'failed')
    GROUP BY 1
"""


def trigger_cost(url, rows, threads):
    """Seconds per single-row INSERT (autocommit) of `rows` attempts of one app, split over
    `threads` threads."""
    def work(count):
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(count):
                conn.execute("""
                    INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt,
                        cause, started_at, outcome, link_status)
                    VALUES (%s, 'app_bench_trigger', 'repo_t', 1, 'scheduler',
                            now() - interval '300 ms', 'delivered', 'synced')""",
                             (uuid.uuid4(),))
    workers = [threading.Thread(target=work, args=(rows // threads,)) for _ in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (time.perf_counter() - t0) / rows * 1e6  # µs per attempt (wall clock)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=5_000_000)
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--trigger-rows", type=int, default=2000)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()

    from docora_admin import db
    ensure_database(args.database_url)
    db.migrate(args.database_url)
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM delivery_attempts "
                            "WHERE app_id <> 'app_bench_trigger'").fetchone()[0]
        conn.execute("DELETE FROM delivery_attempts WHERE app_id = 'app_bench_trigger'")
        conn.execute("DELETE FROM delivery_stats WHERE app_id = 'app_bench_trigger'")
    if args.reload or have != args.attempts:
        log(f"seeding {args.attempts:,} attempts over 7 days, {args.apps} apps")
        log(f"  seeded in {seed(args.database_url, args.attempts, args.apps):.0f} s "
            f"(the trigger writing the rollup included)")

    password = secrets.token_urlsafe(16)
    config = {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
              "SECRET_KEY": secrets.token_hex(32), "ADMIN_USERNAME": "bench",
              "ADMIN_PASSWORD": password, "ENCRYPTION_KEY": secrets.token_hex(32)}
    os.environ.update(config)  # the huey object reads REDIS_URL at import
    from docora_admin import create_app

    app = create_app(config)
    client = app.test_client()
    if client.post("/admin/api/login",
                   json={"username": "bench", "password": password}).status_code != 200:
        sys.exit("login failed")

    with psycopg.connect(args.database_url) as conn:
        stats_rows = conn.execute("SELECT granularity, count(*) FROM delivery_stats "
                                  "GROUP BY 1 ORDER BY 1").fetchall()
    print(f"\n{have or args.attempts:,} attempts over 7 days, {args.apps} apps; rollup rows "
          + ", ".join(f"{n:,} per {'minute' if g == 60 else 'hour'}" for g, n in stats_rows))
    print(f"\n{'request':<52} {'median ms':>10} {'p95 ms':>8}")
    one_app = "app_bench_001"
    for window in ("1h", "1d", "7d"):
        for app_id in (None, one_app):
            path = f"/admin/api/stats/deliveries?window={window}" + (
                f"&app_id={app_id}" if app_id else "")

            def get(path=path):
                response = client.get(path)
                assert response.status_code == 200, response.get_data(as_text=True)
            median, high = timed(get, args.requests)
            print(f"{'GET ' + path.replace(one_app, '<app>'):<52} {median:>10.1f} {high:>8.1f}")
    for window in ("1h", "7d"):
        path = f"/admin/charts?window={window}"
        median, high = timed(lambda: client.get(path), args.requests)
        print(f"{'GET ' + path + ' (page)':<52} {median:>10.1f} {high:>8.1f}")

    with psycopg.connect(args.database_url, autocommit=True) as conn:
        for label, interval in (("1d", "23 hours"), ("7d", "167 hours")):
            median, high = timed(lambda: conn.execute(RAW_1D_7D, (interval,)).fetchall(),
                                 3, warmup=1)
            print(f"{'raw attempt log, ' + label + ' (comparison, SQL only)':<52} "
                  f"{median:>10.1f} {high:>8.1f}")

    print(f"\n{'write path: one attempt per INSERT':<40} {'µs/attempt':>10}")
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        for enabled in (False, True):
            conn.execute("ALTER TABLE delivery_attempts "
                         f"{'ENABLE' if enabled else 'DISABLE'} TRIGGER delivery_stats_on_insert")
            for threads in (1, 4):
                micros = trigger_cost(args.database_url, args.trigger_rows, threads)
                label = f"{'with' if enabled else 'without'} trigger, {threads} thread(s)"
                print(f"{label:<40} {micros:>10.0f}")
        conn.execute("ALTER TABLE delivery_attempts ENABLE TRIGGER delivery_stats_on_insert")
        conn.execute("DELETE FROM delivery_attempts WHERE app_id = 'app_bench_trigger'")
        conn.execute("DELETE FROM delivery_stats WHERE app_id = 'app_bench_trigger'")


if __name__ == "__main__":
    main()
