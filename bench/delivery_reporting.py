"""Benchmark: N worker threads reporting the ends of one bulk operation's snapshot jobs (issue 9).

    .venv/bin/python bench/delivery_reporting.py [--jobs 10000] [--threads 1,4,8] [--repeat 3]
                                                 [--settle-sizes 10000,100000]
                                                 [--background-log 1000000] [--explain]
                                                 [--database-url URL] [--redis-url URL]

What a snapshot job does when it ends, minus the delivery itself, from 1, 4 and 8 threads in this
process (each borrowing from the app's own pool, docora_admin.db, as consumer worker threads
do), until --jobs jobs of ONE bulk operation are reported:

- old: the code before issue 9: the link's status change (`UPDATE app_repositories SET status =
  'synced' … WHERE app_id = … AND repository_id = …`, its own transaction), then
  `UPDATE bulk_operations SET delivered = delivered + 1 WHERE id = …` (its own transaction, the
  same row for every job), then the Redis HINCRBY (bulk_progress.increment_deliveries).
- old, hot row only: just the bulk_operations UPDATE and the HINCRBY (the reporting part of
  "old" by itself).
- new: the real repositories.snapshot_links.mark_synced(conn, claim_row): the link's status
  change and its attempt-log row in one statement (one transaction), then the real
  bulk_progress.increment_deliveries. No shared row is written.

Each run starts from the same state: --jobs links of one operation in `scanning` (claimed for
generation 1, retry_operation_id set, as mark_synced expects), the operation row, its Redis hash,
an empty attempt log, then VACUUM and CHECKPOINT. Every commit is synchronous (the default), as
in a worker. A sampler reads pg_stat_activity every 5 ms during each run and reports the share of
busy backends waiting on a lock (the hot row) or on the WAL flush of a commit.

Then it times one recount of an operation's outcome, services.outcomes.settle(op) (what the
watchdog runs every few seconds; it reads the attempt log's partial index), for operations with
--settle-sizes ended episodes (~1.1 × that many attempt-log rows) in a log that also holds
--background-log rows of other episodes (default 1,000,000): right after the rows were
written (no VACUUM yet: the index-only scan visits the heap) and after VACUUM.

Seeds its own database (default docora_bench_outcomes_delivery; created if missing, migrated,
its tables truncated) and Redis db (default 10, flushed). Prints a table; medians of --repeat.
"""
import argparse
import itertools
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_bench_outcomes_delivery"
DEFAULT_REDIS = "redis://127.0.0.1:6379/10"
OPERATION = "bulk_00000000000000aa"
APP = "app_bench_reporting"

# The pre-issue-9 statements (git show d3ce2d0^: repositories/snapshot_links.mark_synced and
# repositories/bulk_operations.record_delivery).
OLD_MARK_SYNCED = """
    UPDATE app_repositories
    SET status = 'synced', updated_at = now(), last_scanned_at = now(), retry_count = 0,
        last_error = NULL, next_attempt_at = NULL
    WHERE app_id = %s AND repository_id = %s AND status = 'scanning'
"""
OLD_RECORD_DELIVERY = "UPDATE bulk_operations SET delivered = delivered + 1 WHERE id = %s"


def ensure_database(url):
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.pop("dbname")
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info, dbname="postgres"),
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def settings_env(url, redis_url):
    return {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench-secret-key-123456",
            "ADMIN_USERNAME": "bench", "ADMIN_PASSWORD": "bench-password",
            "ENCRYPTION_KEY": "0f" * 32,
            "ALLOW_PRIVATE_WEBHOOKS": "true"}  # the bench's app is on 127.0.0.1


def seed(url, jobs):
    """One app, `jobs` repositories and links, all links claimed (scanning, generation 1) in an
    episode of OPERATION; the operation row, finished resetting, waiting for deliveries."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE apps, repositories, app_repositories, bulk_operations, "
                     "delivery_attempts CASCADE")
        conn.execute("INSERT INTO apps (app_id, app_name, base_url, token_hash) "
                     "VALUES (%s, 'Reporting bench', 'http://127.0.0.1:9/', 'x')", (APP,))
        conn.execute("""INSERT INTO repositories (repository_id, github_url, owner, name)
                        SELECT 'repo_bench_' || g, 'file:///nonexistent/' || g, 'bench', 'r' || g
                        FROM generate_series(1, %s) g""", (jobs,))
        conn.execute("""
            INSERT INTO app_repositories (app_id, repository_id, status, retry_count,
                                          job_generation, retry_cause, retry_operation_id,
                                          next_attempt_at, updated_at)
            SELECT %s, 'repo_bench_' || g, 'scanning', 0, 1, 'bulk', %s,
                   now() + interval '60 s', now()
            FROM generate_series(1, %s) g""", (APP, OPERATION, jobs))


def reset_run(url, redis_url, jobs):
    """Back to the start: every link claimed again, no attempt logged, counters at 0."""
    from docora_admin.services.retries import bulk_progress

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""UPDATE app_repositories
                        SET status = 'scanning', job_generation = 1, retry_count = 0,
                            next_attempt_at = now() + interval '60 s', updated_at = now(),
                            last_scanned_at = NULL
                        WHERE retry_operation_id = %s""", (OPERATION,))
        conn.execute("TRUNCATE delivery_attempts")
        conn.execute("DELETE FROM bulk_operations")
        conn.execute("""
            INSERT INTO bulk_operations (id, scope, requested_by, total, completed, succeeded,
                                         frozen_at, chunk_size, status, finished_at)
            VALUES (%s, 'all', 'bench', %s, %s, %s, now(), 1000, 'completed', now())
        """, (OPERATION, jobs, jobs, jobs))
        conn.execute("VACUUM (ANALYZE) app_repositories, bulk_operations, delivery_attempts")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass
    redis.Redis.from_url(redis_url).flushdb()
    bulk_progress.create_progress(OPERATION, jobs)


def claim_rows(url):
    """The claim row of every link, as snapshot_links.claim returns it."""
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("""
            SELECT id, app_id, repository_id, retry_count, job_generation, retry_cause,
                   retry_operation_id, updated_at AS started_at
            FROM app_repositories WHERE retry_operation_id = %s ORDER BY repository_id
        """, (OPERATION,)).fetchall()


# ---------------------------------------------------------------------------- the three ways

def report_old(claim):
    from docora_admin import db
    from docora_admin.services.retries import bulk_progress

    with db.connection() as conn:
        conn.execute(OLD_MARK_SYNCED, (claim["app_id"], claim["repository_id"]))
    with db.connection() as conn:
        conn.execute(OLD_RECORD_DELIVERY, (OPERATION,))
    bulk_progress.increment_deliveries(OPERATION, delivered=1)


def report_old_hot_row(claim):
    from docora_admin import db
    from docora_admin.services.retries import bulk_progress

    with db.connection() as conn:
        conn.execute(OLD_RECORD_DELIVERY, (OPERATION,))
    bulk_progress.increment_deliveries(OPERATION, delivered=1)


def report_new(claim):
    from docora_admin import db
    from docora_admin.repositories import snapshot_links
    from docora_admin.services.retries import bulk_progress

    with db.connection() as conn:
        ended = snapshot_links.mark_synced(conn, claim)
    assert ended is not None and ended["retry_operation_id"] == OPERATION, ended
    bulk_progress.increment_deliveries(OPERATION, delivered=1)


WAYS = [
    ("old: link UPDATE + hot-row UPDATE + HINCRBY", report_old),
    ("old, hot row only: UPDATE bulk_operations + HINCRBY", report_old_hot_row),
    ("new: mark_synced (link + log row) + HINCRBY", report_new),
]


class WaitSampler(threading.Thread):
    """Samples what the database's busy backends wait on, every 5 ms."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.stop, self.samples = url, threading.Event(), []

    def run(self):
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                self.samples.extend(conn.execute("""
                    SELECT coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '')
                    FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()
                      AND backend_type = 'client backend' AND state = 'active'
                """).fetchall())
                time.sleep(0.005)

    def shares(self):
        n = len(self.samples) or 1
        lock = sum(1 for kind, _ in self.samples if kind == "Lock")
        wal = sum(1 for kind, event in self.samples
                  if event in ("WALSync", "WALWrite", "WALInsert") or kind == "LWLock"
                  and event.startswith("WAL"))
        return lock / n, wal / n, len(self.samples)


def run_way(url, redis_url, jobs, claims, report, threads):
    reset_run(url, redis_url, jobs)
    work = iter(claims)
    take = threading.Lock()
    latencies = [[] for _ in range(threads)]
    errors = []

    def worker(n):
        try:
            while True:
                with take:
                    claim = next(work, None)
                if claim is None:
                    return
                t0 = time.perf_counter()
                report(claim)
                latencies[n].append(time.perf_counter() - t0)
        except Exception as exc:  # surfaced after the run
            errors.append(exc)

    sampler = WaitSampler(url)
    sampler.start()
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    if errors:
        raise errors[0]
    lock_share, wal_share, samples = sampler.shares()
    check_counts(url, redis_url, jobs, report)
    flat = sorted(itertools.chain.from_iterable(latencies))
    return {"seconds": seconds, "jobs_per_s": jobs / seconds,
            "latency_median_ms": statistics.median(flat) * 1000,
            "latency_p95_ms": flat[int(0.95 * (len(flat) - 1))] * 1000,
            "lock_share": lock_share, "wal_share": wal_share, "samples": samples}


def check_counts(url, redis_url, jobs, report):
    """Every job was reported once: in the row (old) or the attempt log (new), and in Redis."""
    from docora_admin.services.retries import bulk_progress

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT delivered FROM bulk_operations WHERE id = %s",
                           (OPERATION,)).fetchone()[0]
        logged = conn.execute("SELECT count(*) FROM delivery_attempts WHERE operation_id = %s "
                              "AND link_status = 'synced'", (OPERATION,)).fetchone()[0]
    live = bulk_progress.get_progress(OPERATION)["delivered"]
    durable = logged if report is report_new else row
    assert durable == jobs and live == jobs, (report.__name__, row, logged, live)


# ---------------------------------------------------------------------------- settle()

def seed_attempt_log(url, operation_id, ended):
    """An operation that reset `ended` links, all of whose episodes ended (90% delivered, 10%
    gave up), with one earlier failed attempt for a tenth of them: ~1.1 × ended log rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO bulk_operations (id, scope, requested_by, total, completed, succeeded,
                                         frozen_at, chunk_size, status, finished_at)
            VALUES (%s, 'all', 'bench', %s, %s, %s, now(), 1000, 'completed', now())
        """, (operation_id, ended, ended, ended))
        conn.execute("""
            INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause,
                                           operation_id, started_at, finished_at, outcome,
                                           link_status, error)
            SELECT gen_random_uuid(), %(app)s, 'repo_settle_' || g, a, 'bulk', %(op)s,
                   now() - interval '1 s', now(),
                   CASE WHEN a = 1 AND g %% 10 = 0 OR g %% 10 = 1 THEN 'failed'
                        ELSE 'delivered' END,
                   CASE WHEN a = 1 AND g %% 10 = 0 THEN 'pending_snapshot'
                        WHEN g %% 10 = 1 THEN 'failed' ELSE 'synced' END,
                   CASE WHEN a = 1 AND g %% 10 = 0 OR g %% 10 = 1 THEN 'HTTP 500' END
            FROM generate_series(1, %(n)s) g
            CROSS JOIN LATERAL generate_series(1, CASE WHEN g %% 10 = 0 THEN 2 ELSE 1 END) a
        """, {"app": APP, "op": operation_id, "n": ended})


def time_settle(url, operation_id, repeat=5):
    from docora_admin import db
    from docora_admin.repositories import bulk_operations as ops_repo
    from docora_admin.services.retries import bulk_progress, outcomes

    samples = []
    for _ in range(repeat):
        with db.connection() as conn:
            op = ops_repo.get_operation(conn, operation_id)
        if bulk_progress.get_progress(operation_id) is None:
            bulk_progress.create_progress(operation_id, op["total"])
        t0 = time.perf_counter()
        row = outcomes.settle(op)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, row


def explain_ended_episodes(url, operation_id):
    with psycopg.connect(url) as conn:
        rows = conn.execute("""
            EXPLAIN (ANALYZE, BUFFERS)
            SELECT count(*) FILTER (WHERE link_status = 'synced') AS delivered,
                   count(*) FILTER (WHERE link_status = 'failed') AS failed_again
            FROM delivery_attempts
            WHERE operation_id = %s AND link_status IN ('synced', 'failed')
        """, (operation_id,)).fetchall()
    return [line for (line,) in rows]


def seed_background_log(url, rows):
    """`rows` attempt-log rows of other episodes, as a log of ~1M rows holds: 70% of no bulk
    operation (scheduler, single retries), 30% spread over 300 other operations; a third of them
    non-final attempts (link_status pending_snapshot)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause,
                                           operation_id, started_at, finished_at, outcome,
                                           link_status, error)
            SELECT gen_random_uuid(), %(app)s, 'repo_other_' || g, 1 + g %% 3,
                   CASE WHEN g %% 10 < 7 THEN 'scheduler' ELSE 'bulk' END,
                   CASE WHEN g %% 10 >= 7 THEN 'bulk_0be0' || lpad(to_hex(g %% 300), 12, '0')
                   END,
                   now() - make_interval(secs => %(n)s - g + 1),
                   now() - make_interval(secs => %(n)s - g),
                   CASE WHEN g %% 3 = 0 THEN 'delivered' ELSE 'failed' END,
                   CASE WHEN g %% 3 = 0 THEN 'synced' WHEN g %% 3 = 1 THEN 'pending_snapshot'
                        ELSE 'failed' END,
                   CASE WHEN g %% 3 > 0 THEN 'POST /create → HTTP 500' END
            FROM generate_series(1, %(n)s) g
        """, {"app": APP, "n": rows})


def settle_section(url, sizes, explain, background):
    results = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE delivery_attempts")
        conn.execute("DELETE FROM bulk_operations WHERE id LIKE 'bulk_5e771e%'")
    seed_background_log(url, background)
    for n, size in enumerate(sizes):
        operation_id = f"bulk_5e771e{n:010x}"
        seed_attempt_log(url, operation_id, size)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE delivery_attempts")  # autovacuum's ANALYZE, not its VACUUM
            log_rows = conn.execute("SELECT count(*) FROM delivery_attempts").fetchone()[0]
        fresh, row = time_settle(url, operation_id)
        plan_fresh = explain_ended_episodes(url, operation_id) if explain else []
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) delivery_attempts")
        vacuumed, row = time_settle(url, operation_id)
        plan_vacuumed = explain_ended_episodes(url, operation_id) if explain else []
        assert row["delivered"] == size * 9 // 10 and row["delivery_failed"] == size // 10, row
        assert row["settled_at"] is not None
        results.append({"size": size, "log_rows": log_rows, "fresh": fresh,
                        "vacuumed": vacuumed, "plans": (plan_fresh, plan_vacuumed)})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--threads", default="1,4,8")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; median reported")
    parser.add_argument("--settle-sizes", default="10000,100000")
    parser.add_argument("--background-log", type=int, default=1_000_000,
                        help="attempt-log rows of other episodes around the settled operations")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN (ANALYZE, BUFFERS) of settle()'s recount")
    parser.add_argument("--skip-reporting", action="store_true")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]

    env = settings_env(args.database_url, args.redis_url)
    os.environ.update(env)
    ensure_database(args.database_url)
    from docora_admin import db, runtime
    from docora_admin.config import load_settings

    db.migrate(args.database_url)
    runtime.start(load_settings(env), pool_size=max(threads) + 1)

    print(f"delivery reporting benchmark: {os.cpu_count()} cores, PostgreSQL and Redis real, "
          f"worker threads in this process on the app's pool; {args.jobs:,} jobs of one "
          f"operation per run; median of {args.repeat} runs per cell")
    if not args.skip_reporting:
        seed(args.database_url, args.jobs)
        claims = claim_rows(args.database_url)
        table = []
        for name, report in WAYS:
            for n in threads:
                runs = [run_way(args.database_url, args.redis_url, args.jobs, claims, report, n)
                        for _ in range(args.repeat)]
                median = sorted(runs, key=lambda r: r["jobs_per_s"])[len(runs) // 2]
                table.append((name, n, runs, median))
                print(f"  {name}, {n} threads: "
                      + ", ".join(f"{r['jobs_per_s']:,.0f}" for r in runs) + " jobs/s",
                      file=sys.stderr, flush=True)
        print()
        header = (f"{'way':<52} {'threads':>7} {'jobs/s (median)':>15} {'runs':>22} "
                  f"{'x 1 thread':>10} {'job ms med/p95':>15} {'lock wait':>9} {'WAL wait':>8}")
        print(header)
        print("-" * len(header))
        single = {}
        for name, n, runs, median in table:
            single.setdefault(name, median["jobs_per_s"])
            print(f"{name:<52} {n:>7} {median['jobs_per_s']:>15,.0f} "
                  f"{' / '.join(format(r['jobs_per_s'], ',.0f') for r in runs):>22} "
                  f"{median['jobs_per_s'] / single[name]:>9.2f}x "
                  f"{median['latency_median_ms']:>6.2f} / {median['latency_p95_ms']:>6.2f} "
                  f"{median['lock_share']:>8.0%} {median['wal_share']:>8.0%}")
        print("lock wait / WAL wait: share of pg_stat_activity samples of busy backends waiting "
              "on a heavyweight lock (the hot row) / on WAL (the commit's flush), median run")

    sizes = [int(s) for s in args.settle_sizes.split(",") if s]
    if sizes:
        print()
        print("outcomes.settle(op): one recount of an operation's outcome from the attempt log "
              "(5 calls each, ms)")
        header = (f"{'ended episodes':>14} {'log rows':>9} {'before VACUUM':>26} "
                  f"{'after VACUUM':>26}")
        print(header)
        print("-" * len(header))
        for r in settle_section(args.database_url, sizes, args.explain,
                                                  args.background_log):
            def cell(samples):
                return (f"med {statistics.median(samples):6.1f} "
                        f"(min {min(samples):5.1f}, max {max(samples):5.1f})")
            print(f"{r['size']:>14,} {r['log_rows']:>9,} {cell(r['fresh']):>26} "
                  f"{cell(r['vacuumed']):>26}")
            if args.explain:
                for label, plan in zip(("before VACUUM", "after VACUUM"), r["plans"]):
                    print(f"  EXPLAIN ended_episodes, {r['size']:,} episodes, {label}:")
                    for line in plan:
                        print("    " + line)


if __name__ == "__main__":
    main()
