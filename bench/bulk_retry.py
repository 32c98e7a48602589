"""Benchmark: bulk retry of N failed links, end to end through the JSON API.

    .venv/bin/python bench/bulk_retry.py [--rows 100000] [--repeat 3] [--post-rows 1000000]
                                         [--synced 900000] [--attempt-log 1000000]
                                         [--only-main | --only-post] [--no-reference]
                                         [--code PATH]

Each run seeds N failed links in a database of its own (then a CHECKPOINT, so that every run
pays the same full-page writes), starts a real `huey_consumer app.huey -w 1` process, POSTs
/admin/api/retry/all (Flask test client, in this process) and polls the progress endpoint every
250 ms until the operation ends; then it stops the consumer. Its one worker is busy with the bulk
task until the end, so the snapshot jobs stay queued: this measures "reset and queued". The
time to completed == total runs from the POST to the operation's finished_at in PostgreSQL (not
to the poll that saw it).

With the retry-outcome model (migration 007) each reset bumps the link's job generation and the
jobs are snapshot(app_id, repository_id, operation_id, generation): after each run the bench
reads the first jobs left in the queue (services/jobs/job_queue.py's layout) and checks they carry
the operation and the link's current generation. The consumer also runs its watchdog thread
(sweeper, outcome recount) as in production; synced links are seeded as just scanned so that it
queues no re-scans. --synced and --attempt-log put the 100k failed links among 1M links and an
attempt log of ~1M rows (issue 9: the log must not slow the bulk retry).

Beside each main run, on freshly seeded data of the same shape in the same database (so the same
schema and indexes), interleaved and alternating which goes first, runs the one-statement
reference: one UPDATE … RETURNING of every failed link (the columns a chunk sets), committed,
then its jobs pushed as serialized Huey messages 1,000 per ZADD (job_queue.push_snapshot_jobs).
It has no operation, chunks, cancel checks, outbox or progress; the ratio of the medians (ours /
reference) is printed. --no-reference skips it. --code PATH runs another checkout's app and
consumer (e.g. `git worktree add --detach /tmp/base main`) against a database of its own
(default name + "_code"): run the bench once with and once without it, alternately, for a
before/after. (Ours ends at finished_at, written when the last chunk's statement returns; that
chunk's push, 1,000 jobs, runs beside it and may end a few ms later.)

Measured 2026-12-03 on a 2-core machine shared with other work (medians of 3, 100,000 failed
links alone, chunk 1000; commands: `flock /tmp/docora-bench.lock .venv/bin/python
bench/bulk_retry.py --only-main --repeat 3 [--code /tmp/base-perf-reset]`, base and new
alternately, twice):
- before (main, with migration 008's in-progress indexes): ours 3.25 / 2.76 s, reference 3.15 /
  3.06 s (ratio 1.03x / 0.90x); 1M links (--synced 900000): ours 2.94 s, reference 3.23 s.
- after (migration 020: the in-progress updated_at and app indexes without id): ours 2.75 /
  2.77 s, reference 2.65 / 2.61 s (ratio 1.04x / 1.06x).
- POST /retry/all with 1,000,000 failed links: 34.6 ms median (--only-post).
Ours overlaps each chunk's push with the next chunk's SQL, which the reference does not; on two
cores the consumer's Python, PostgreSQL and Redis contend, so ours gains less than the
reference's UPDATE does from cheaper index entries.

It also reports: the POST's answer time, time to completed == total and rows/s at the app's default
chunk size (--repeat runs and their median), one run at --compare-chunk-size, the same with
chunk size 1 (on a smaller N), rows changed after a cancel was acknowledged and how long the
cancel took to stop the task, and the POST's answer time with --post-rows failed links.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
# --code PATH: the app (in this process and in the consumer) is another checkout's. Read before
# anything imports docora_admin.
CODE = ROOT
if "--code" in sys.argv[:-1]:
    CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
sys.path.insert(0, str(CODE))

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_admin_bench_bulk"
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"


def ensure_database(url):
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.pop("dbname")
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info, dbname="postgres"),
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(url, failed, other=0, attempt_log=0):
    """Fresh tables with `failed` failed links spread over 50 apps, plus `other` synced ones
    (scanned just now, so the consumer's sweeper queues no re-scan of them) and `attempt_log`
    rows in the attempt log (delivery_attempts)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE apps, repositories, app_repositories, bulk_operations, "
                     "delivery_attempts, job_outbox CASCADE")
        conn.execute("""INSERT INTO apps (app_id, app_name, base_url, token_hash)
                        SELECT 'app_bench_' || g, 'Bench app ' || g, 'http://127.0.0.1:9/', 'x'
                        FROM generate_series(1, 50) g""")
        total = failed + other
        conn.execute("""INSERT INTO repositories (repository_id, github_url, owner, name)
                        SELECT 'repo_bench_' || g, 'file:///nonexistent/' || g, 'bench', 'r' || g
                        FROM generate_series(1, %s) g""", (total,))
        conn.execute("""
            INSERT INTO app_repositories (app_id, repository_id, status, last_error,
                                          retry_count, updated_at, last_scanned_at,
                                          job_generation, retry_cause)
            SELECT 'app_bench_' || (g %% 50 + 1), 'repo_bench_' || g,
                   CASE WHEN g <= %s THEN 'failed' ELSE 'synced' END,
                   CASE WHEN g <= %s THEN 'POST /create → HTTP 500' END,
                   CASE WHEN g <= %s THEN 5 ELSE 0 END,
                   now() - make_interval(secs => g),
                   CASE WHEN g > %s THEN now() END, 5, 'scheduler'
            FROM generate_series(1, %s) g""", (failed, failed, failed, failed, total))
        if attempt_log:
            seed_attempt_log(conn, total, attempt_log)
        conn.execute("VACUUM ANALYZE app_repositories")
        if attempt_log:
            conn.execute("VACUUM ANALYZE delivery_attempts")
        # Every run starts right after a checkpoint, so each pays the same full-page writes
        # (without this, whether one fell inside a run swung its time by a third).
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass  # needs superuser or pg_checkpoint; the runs are then noisier


def seed_attempt_log(conn, links, rows):
    """`rows` attempts spread over the links (link k gets attempts while rows last): five failed
    ones for a failed link's episode, one delivered for a synced link; a third belong to 100
    earlier bulk operations."""
    conn.execute("""
        INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause,
                                       operation_id, started_at, finished_at, outcome,
                                       link_status, error, http_status)
        SELECT ar.id, ar.app_id, ar.repository_id, a,
               CASE WHEN n %% 3 = 0 THEN 'bulk' ELSE 'scheduler' END,
               CASE WHEN n %% 3 = 0 THEN 'bulk_0ld0' || lpad(to_hex(n %% 100), 12, '0') END,
               now() - make_interval(secs => %(rows)s - n + 2),
               now() - make_interval(secs => %(rows)s - n),
               CASE WHEN ar.status = 'failed' THEN 'failed' ELSE 'delivered' END,
               CASE WHEN ar.status = 'synced' THEN 'synced'
                    WHEN a = 5 THEN 'failed' ELSE 'pending_snapshot' END,
               ar.last_error, CASE WHEN ar.status = 'failed' THEN 500 END
        FROM (SELECT n, a, (n - 1) %% %(links)s + 1 AS g
              FROM generate_series(1, %(rows)s) n, LATERAL (SELECT 1 + (n - 1) / %(links)s) s(a)
             ) attempts
        JOIN app_repositories ar ON ar.repository_id = 'repo_bench_' || attempts.g
    """, {"rows": rows, "links": links})


def app_env(url, redis_url, chunk_size):
    return {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench-secret-key-123456",
            "ADMIN_USERNAME": "bench", "ADMIN_PASSWORD": "bench-password",
            "ENCRYPTION_KEY": "0f" * 32, "BULK_CHUNK_SIZE": str(chunk_size),
            "ALLOW_PRIVATE_WEBHOOKS": "true"}  # the bench's apps are on 127.0.0.1


def build_app(url, redis_url, chunk_size):
    env = app_env(url, redis_url, chunk_size)
    os.environ.update(env)
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


def start_consumer(url, redis_url, chunk_size):
    """A real consumer with one worker thread, polling every 50 ms, as `scripts/run` starts it
    (with more workers there)."""
    env = {**os.environ, **app_env(url, redis_url, chunk_size), "PYTHONPATH": str(CODE)}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "huey_consumer"), "app.huey", "-w", "1", "-k",
         "thread", "-d", "0.05", "-m", "0.1"],
        cwd=CODE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        log.seek(0)
        if b"consumer started" in log.read().lower():
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError("huey_consumer did not start:\n" + log.read().decode())
        time.sleep(0.05)


def stop_consumer(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


POLL_S = 0.25  # four times the panel's rate: enough samples, little load on the two cores


def finished_at(url, operation_id):
    """When PostgreSQL recorded the operation's end, as a Unix time (same host clock as ours)."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT extract(epoch FROM finished_at) FROM bulk_operations "
                            "WHERE id = %s", (operation_id,)).fetchone()[0]


def check_queued_job(url, operation_id):
    """The first snapshot job left in the queue is the new code's: snapshot(app_id,
    repository_id, operation_id, generation) for the link's current generation (the layout
    services/jobs/job_queue.py writes: 8-byte place + Huey's message, in the priority queue)."""
    from docora_admin.huey_app import huey
    from docora_admin.services.jobs import job_queue

    storage = job_queue._storage()
    first = storage.conn.zrange(storage.queue_key, 0, 99)
    snapshots = [m for m in (huey.serializer.deserialize(member[8:]) for member in first)
                 if m.name.endswith("snapshot")]
    if not snapshots:
        print("no snapshot job among the first 100 queue members; queue length",
              storage.conn.zcard(storage.queue_key), "first:",
              [huey.serializer.deserialize(m[8:]).name for m in first[:5]])
        return None
    app_id, repository_id, job_operation, generation = snapshots[0].args
    with psycopg.connect(url) as conn:
        current = conn.execute(
            "SELECT job_generation, retry_operation_id, status FROM app_repositories "
            "WHERE app_id = %s AND repository_id = %s", (app_id, repository_id)).fetchone()
    assert job_operation == operation_id, (job_operation, operation_id)
    assert current == (generation, operation_id, "pending_snapshot"), (current, generation)
    return len(snapshots)


def run(url, redis_url, rows, chunk_size, cancel_after=None, other=0, attempt_log=0):
    from docora_admin.huey_app import huey

    seed(url, rows, other, attempt_log)
    redis.Redis.from_url(redis_url).flushdb()
    _, client, headers = build_app(url, redis_url, chunk_size)
    consumer = start_consumer(url, redis_url, chunk_size)
    started = time.time()
    response = client.post("/admin/api/retry/all", headers=headers)
    post_ms = (time.time() - started) * 1000
    assert response.status_code == 200, response.get_data(as_text=True)
    operation_id = response.get_json()["data"]["operation_id"]
    result = {"post_ms": post_ms, "rows": rows, "chunk_size": chunk_size}
    polls = []
    cancel_ack = None
    while True:
        t0 = time.perf_counter()
        progress = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
        polls.append((time.perf_counter() - t0) * 1000)
        if cancel_after and cancel_ack is None and time.time() - started >= cancel_after:
            client.post(f"/admin/api/retry/cancel/{operation_id}", headers=headers)
            cancel_ack = time.time()
            failed_at_ack = failed_count(url)
        if progress["status"] in ("completed", "cancelled", "failed"):
            break
        time.sleep(POLL_S)
    stop_consumer(consumer)
    if progress["completed"]:
        assert check_queued_job(url, operation_id), "no snapshot job left in the queue"
    # The end as PostgreSQL recorded it, not as the next poll saw it.
    seconds = float(finished_at(url, operation_id)) - started
    result.update(seconds=seconds, completed=progress["completed"], status=progress["status"],
                  poll_ms_median=statistics.median(polls), queued=huey.pending_count(),
                  rows_per_s=progress["completed"] / seconds)
    if cancel_ack is not None:
        result["cancel_to_stop_s"] = started + seconds - cancel_ack
        result["rows_changed_after_cancel_ack"] = failed_at_ack - failed_count(url)
    huey.flush()
    return result


# The reference's reset: the same columns as a bulk chunk's (repositories/retry_links.py), so that
# each row is the same size and its jobs are valid; all failed links in one statement.
REFERENCE_UPDATE = """
    UPDATE app_repositories
    SET status = 'pending_snapshot', retry_count = 0, last_error = NULL, updated_at = now(),
        next_attempt_at = now(), job_generation = job_generation + 1, retry_cause = 'bulk',
        retry_operation_id = %s
    WHERE status = 'failed'
    RETURNING app_id, repository_id, job_generation
"""
REFERENCE_BATCH = 1000


def reference_run(url, redis_url, rows, other=0, attempt_log=0):
    """The one-statement reference on the same schema and data: one UPDATE … RETURNING of every
    failed link, committed, then its jobs pushed as serialized Huey messages, 1,000 per ZADD
    (services/jobs/job_queue.push_snapshot_jobs, the push our chunks use). No operation row, no
    chunks, no cancel check, no outbox, no progress: the floor under any retry-all."""
    from docora_admin.huey_app import huey
    from docora_admin.services.jobs import job_queue

    seed(url, rows, other, attempt_log)
    redis.Redis.from_url(redis_url).flushdb()
    operation_id = "bulk_reference0000"
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        reset = conn.execute(REFERENCE_UPDATE, (operation_id,)).fetchall()
        conn.commit()
        stamp = int(time.time() * 1_000_000)
        for start in range(0, len(reset), REFERENCE_BATCH):
            job_queue.push_snapshot_jobs(
                [(app_id, repository_id, operation_id, generation)
                 for app_id, repository_id, generation in reset[start:start + REFERENCE_BATCH]],
                stamp + start)
        seconds = time.perf_counter() - started
    queued = huey.pending_count()
    assert len(reset) == rows and queued == rows, (len(reset), queued, rows)
    huey.flush()
    return {"seconds": seconds, "rows": rows}


def time_post_only(url, redis_url, failed, other=0, attempt_log=0):
    seed(url, failed, other, attempt_log)
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
    parser.add_argument("--chunk-size", type=int,
                        help="the main runs' chunk size (default: the app's default)")
    parser.add_argument("--compare-chunk-size", type=int, default=100,
                        help="one more run with this chunk size, for comparison")
    parser.add_argument("--repeat", type=int, default=3, help="main runs; the median is reported")
    parser.add_argument("--chunk-one-rows", type=int, default=10_000)
    parser.add_argument("--post-rows", type=int, default=1_000_000)
    parser.add_argument("--only-post", action="store_true",
                        help="only time the POST with --post-rows failed links")
    parser.add_argument("--only-main", action="store_true",
                        help="only the --repeat main runs (no comparison, cancel or POST runs)")
    parser.add_argument("--synced", type=int, default=0,
                        help="synced links beside the failed ones in the main runs (e.g. "
                             "900000 for 1M links)")
    parser.add_argument("--attempt-log", type=int, default=0,
                        help="rows in the attempt log (delivery_attempts) in the main runs")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the one-statement reference runs beside the main runs")
    parser.add_argument("--code", metavar="PATH", default=str(ROOT),
                        help="run another checkout's app and consumer (e.g. a worktree of main) "
                             "in a database of its own (default database name + '_code')")
    args = parser.parse_args()
    if CODE != ROOT and args.database_url == DEFAULT_DB:
        # Its migrations are not ours: never mix the two schemas in one database.
        args.database_url = DEFAULT_DB + "_code"
    # Before anything imports docora_admin.huey_app: its huey object reads REDIS_URL at import,
    # and the POSTs must queue where the consumer listens.
    # (Importing anything of docora_admin imports it: docora_admin/__init__ reaches huey_app.)
    os.environ["REDIS_URL"] = args.redis_url
    from docora_admin import db
    from docora_admin.config import DEFAULT_BULK_CHUNK_SIZE
    if args.chunk_size is None:
        args.chunk_size = DEFAULT_BULK_CHUNK_SIZE
    ensure_database(args.database_url)
    db.migrate(args.database_url)

    print(f"bulk retry benchmark, {os.cpu_count()} cores; POSTs and polls in-process (Flask test "
          "client), the task in a real huey_consumer process, PostgreSQL and Redis real")
    if args.only_post:
        return report_post(args)
    print(f"code: {CODE}; database: {args.database_url}")
    print(f"main runs: {args.rows:,} failed + {args.synced:,} synced links, "
          f"{args.attempt_log:,} attempt-log rows")
    runs, references = [], []
    for i in range(args.repeat):
        # Interleaved, the order alternating, each on freshly seeded data.
        steps = ["ours", "reference"] if i % 2 == 0 else ["reference", "ours"]
        for step in steps:
            if step == "ours":
                runs.append(run(args.database_url, args.redis_url, args.rows, args.chunk_size,
                                other=args.synced, attempt_log=args.attempt_log))
            elif not args.no_reference:
                references.append(reference_run(args.database_url, args.redis_url, args.rows,
                                                other=args.synced, attempt_log=args.attempt_log))
    for i, main_run in enumerate(runs, 1):
        print(f"run {i}: {args.rows:,} failed, chunk {args.chunk_size}: POST answered in "
              f"{main_run['post_ms']:.1f} ms; completed == total ({main_run['completed']:,}) "
              f"after {main_run['seconds']:.2f} s = {main_run['rows_per_s']:,.0f} rows/s; "
              f"{main_run['queued']:,} snapshot jobs still queued when the consumer was stopped "
              f"(its worker takes them once the bulk task ends); progress poll median "
              f"{main_run['poll_ms_median']:.1f} ms")
    seconds = statistics.median(r["seconds"] for r in runs)
    print(f"median of {len(runs)}: {seconds:.2f} s = {args.rows / seconds:,.0f} rows/s "
          f"(min {min(r['seconds'] for r in runs):.2f}, max "
          f"{max(r['seconds'] for r in runs):.2f}); POST median "
          f"{statistics.median(r['post_ms'] for r in runs):.1f} ms")
    if references:
        ref = statistics.median(r["seconds"] for r in references)
        each = ", ".join(f"{r['seconds']:.2f}" for r in references)
        print(f"one-statement reference (one UPDATE … RETURNING of every failed link + push in "
              f"ZADDs of {REFERENCE_BATCH:,}), same schema and data: "
              f"{each} s, median {ref:.2f} s "
              f"= {args.rows / ref:,.0f} rows/s")
        print(f"ratio ours / reference (medians): {seconds / ref:.2f}x")
    if args.only_main:
        return
    other = run(args.database_url, args.redis_url, args.rows, args.compare_chunk_size)
    print(f"{args.rows:,} failed, chunk {args.compare_chunk_size}: {other['seconds']:.2f} s = "
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
