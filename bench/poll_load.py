"""Benchmark: 100 logged-in clients polling bulk progress once a second while a retry runs.

    .venv/bin/python bench/poll_load.py [--clients 100] [--seconds 30] [--rows 100000]

Starts gunicorn (2 workers x 8 threads, the app as deployed) and a Huey consumer against a
database and Redis db of its own, seeds failed links, starts POST /admin/api/retry/all with a
small chunk delay so the operation runs for the whole window, then runs N client threads, each
with its own keep-alive connection and session, alternating JSON and htmx-fragment polls of
/admin/api/retry/progress/<id> once a second. Reports request count, errors, and latency
p50/p95/p99/max as seen by the clients (loopback, so server time plus a little), and the
server's own time from gunicorn's access log.

Issue 25, 500 clients × 20 s, interleaved with 58974bf (every poll and session check read
PostgreSQL) on a 2-core machine: server p50 / p99 before 26.1–31.6 / 60.6–77.4 ms, 95–100% of
the polls asked for answered; after (Redis only) 2.3–3.0 / 22.5–25.5 ms on a quiet machine
(28.7–35.4 beside other work), 100% answered in every run.

2026-12-06, a slower machine of the same kind, quiet: server p50 / p99 14.7–26.4 / 62.2–86.7 ms,
96.8–100% answered, with main and with c40be76 (the code measured at 18–28 ms on 12-04) alike,
interleaved. A poll is ~1.7 ms of Python in its worker (py-spy --gil: the panel's template a
fifth, the session and the login check a fifth, the operation's read a tenth, gunicorn's
access log, which this bench times polls by, a twelfth); 500 polls a second, the 500 clients,
the bulk retry, PostgreSQL and Redis fill the 2 cores, and the p99 is queueing for them.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bulk_retry  # noqa: E402  (seeding and database helpers)

ENV = {"SECRET_KEY": "bench-secret-key-123456", "ADMIN_USERNAME": "bench",
       "ADMIN_PASSWORD": "bench-password", "ENCRYPTION_KEY": "0f" * 32}


def login(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"username": ENV["ADMIN_USERNAME"], "password": ENV["ADMIN_PASSWORD"]})
    conn.request("POST", "/admin/api/login", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read())
    # Every cookie it sets (the session's, and the device cookie of a login).
    cookie = "; ".join(value.split(";", 1)[0] for name, value in response.getheaders()
                       if name.lower() == "set-cookie")
    return conn, cookie, data["csrf_token"]


def poller(port, cookie, path, seconds, latencies, errors, start_at):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    time.sleep(max(0, start_at - time.monotonic()))
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        tick = time.monotonic()
        headers = {"Cookie": cookie}
        if n % 2:
            headers["HX-Request"] = "true"
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(response.status)
        except OSError as exc:
            errors.append(type(exc).__name__)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies.append((time.monotonic() - tick) * 1000)
        n += 1
        time.sleep(max(0, 1 - (time.monotonic() - tick)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=bulk_retry.DEFAULT_DB)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    import redis

    from tests.processes import Process, free_port, start_consumer

    bulk_retry.ensure_database(args.database_url)
    from docora_admin import db
    db.migrate(args.database_url)
    bulk_retry.seed(args.database_url, args.rows)
    redis.Redis.from_url(args.redis_url).flushdb()
    env = dict(ENV, DATABASE_URL=args.database_url, REDIS_URL=args.redis_url,
               BULK_CHUNK_SIZE="100", BULK_CHUNK_DELAY_MS="40")
    import os
    os.environ.update(env)
    from tests import processes

    log_dir = Path("/tmp/docora-poll-bench")
    log_dir.mkdir(exist_ok=True)
    port = free_port()
    access_log = log_dir / "access.log"
    access_log.unlink(missing_ok=True)
    web = Process([str(processes.BIN / "gunicorn"), "app:create_app()", "-b",
                   f"127.0.0.1:{port}", "-w", "2", "-k", "gthread", "--threads", "8",
                   "--access-logfile", str(access_log),
                   "--access-logformat", "%(U)s %(s)s %(L)s"],
                  {**os.environ, "PYTHONPATH": str(ROOT)}, log_dir / "web.log")
    consumer = None
    try:
        for _ in range(100):
            try:
                login(port)
                break
            except OSError:
                time.sleep(0.2)
        # One worker: it runs the bulk task first (higher priority) and the snapshot jobs after,
        # so the window measures polling beside a running bulk retry, not beside deliveries.
        consumer = start_consumer(log_dir, workers=1, **env)
        _, cookie, token = login(port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/admin/api/retry/all", headers={"Cookie": cookie,
                                                              "X-CSRFToken": token})
        started = json.loads(conn.getresponse().read())["data"]
        path = f"/admin/api/retry/progress/{started['operation_id']}"
        sessions = [login(port)[1] for _ in range(args.clients)]
        latencies, errors = [], []
        start_at = time.monotonic() + 0.5
        threads = [threading.Thread(target=poller, args=(port, cookie, path, args.seconds,
                                                         latencies, errors,
                                                         start_at + i / args.clients))
                   for i, cookie in enumerate(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers={"Cookie": cookie})
        final = json.loads(conn.getresponse().read())["data"]
        latencies.sort()

        def pct(p):
            return latencies[min(len(latencies) - 1, int(len(latencies) * p))]

        print(f"{args.clients} clients x {args.seconds} s, JSON and fragment alternating, "
              f"gunicorn 2x8 on 127.0.0.1, bulk retry of {args.rows:,} running meanwhile "
              f"(reached {final['completed']:,}/{final['total']:,}, {final['status']})")
        asked = args.clients * args.seconds  # one poll a second each, if answered in time
        print(f"requests {len(latencies):,} of {asked:,} asked "
              f"({100 * (len(latencies) - len(errors)) / asked:.1f}% answered), "
              f"errors {len(errors)} {sorted(set(errors))[:5]}")
        print(f"client-side latency ms: p50 {statistics.median(latencies):.1f}  "
              f"p95 {pct(.95):.1f}  p99 {pct(.99):.1f}  max {latencies[-1]:.1f}")
        # Server time from gunicorn's access log (request start to response end), which leaves
        # out the Python client threads' own scheduling delays.
        server = sorted(float(line.split()[2]) * 1000 for line in access_log.read_text()
                        .splitlines() if "/retry/progress/" in line)
        if server:
            def spct(p):
                return server[min(len(server) - 1, int(len(server) * p))]
            print(f"server-side time ms ({len(server)} polls): p50 {statistics.median(server):.1f}"
                  f"  p95 {spct(.95):.1f}  p99 {spct(.99):.1f}  max {server[-1]:.1f}")
    finally:
        if consumer:
            consumer.stop()
        web.stop()


if __name__ == "__main__":
    main()
