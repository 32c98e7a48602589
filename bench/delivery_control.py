"""Benchmark: retry-all against one app that is down, then the same app recovering (issue 11).

    .venv/bin/python bench/delivery_control.py [--links 10000] [--threshold 10] [--rate 200]
                                               [--workers 8]

Seeds --links failed links of one app in a database of its own. Each link has its own repository
(the schema allows one link per app and repository), all of them file:// URLs to one small local
git repository with one file, through symlinks. A receiver in this process checks every
signature and answers 500; a real `huey_consumer` (--workers threads, watchdog every second)
delivers. Then:

1. down: POST /admin/api/retry/all; when the reset phase is over, the queue is empty and no link
   is being delivered, it reports how many attempts reached the app (the circuit opens at
   --threshold failures in a row) and how many links were held with their attempts intact;
2. recovery: the receiver answers 200 from then on. The next probe (CIRCUIT_PROBE_SECONDS=1,
   capped at 5 s for the bench) goes through, closes the circuit and releases the held links;
   it reports the time until every link is synced, links/s, and the busiest second the receiver
   saw against the app's limit (--rate requests/s).

The links that failed before the circuit opened wait out a backoff (RETRY_BACKOFF_SECONDS=5 here,
60 by default) before they deliver.

BENCH_CONSUMER_LOG=<file> keeps the consumer's log there; BENCH_SHOW_LOG=1 prints its end.
Measured (2-core machine, quiet): 19 attempts reached the app; all 10,000 delivered 166 s after it
came back (60 links/s, each link its own repository to clone); busiest second 76 requests.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bulk_retry import app_env, ensure_database  # noqa: E402
from tests.webhook_receiver import Receiver  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_admin_bench_control"
DEFAULT_REDIS = "redis://127.0.0.1:6379/10"
TABLES = ("app_delivery_control, delivery_attempts, bulk_operation_targets, bulk_operations, "
          "app_delivered_files, snapshot_files, repository_snapshots, app_repositories, "
          "repositories, apps")


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repositories(base, count):
    """One bare repository with one file, and `count` symlinks to it (one URL per link)."""
    work, bare, links = base / "work", base / "repo.git", base / "links"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text("# Bench\n")
    git("add", ".", cwd=work)
    git("-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "one",
        cwd=work)
    git("clone", "-q", "--bare", str(work), str(bare), cwd=base)
    links.mkdir()
    for n in range(count):
        (links / f"r{n}.git").symlink_to(bare)
    return links


def seed(url, receiver, links_dir, count):
    from docora_admin import crypto

    key = crypto.encrypt(bytes.fromhex("0f" * 32), receiver.auth_key)
    with psycopg.connect(url) as conn:
        conn.execute(f"TRUNCATE {TABLES} CASCADE")
        conn.execute("""
            INSERT INTO apps (app_id, app_name, base_url, token_hash, client_auth_key_encrypted)
            VALUES ('app_benchcontrol000000000000', 'Down App', %s, 'x', %s)
        """, (receiver.base_url, key))
        conn.execute("""
            INSERT INTO repositories (repository_id, github_url, owner, name)
            SELECT 'repo_bc_' || g, 'file://' || %s || '/r' || g || '.git', 'bench', 'r' || g
            FROM generate_series(0, %s - 1) g
        """, (str(links_dir), count))
        conn.execute("""
            INSERT INTO app_repositories (app_id, repository_id, status, last_error, retry_count,
                                          updated_at)
            SELECT 'app_benchcontrol000000000000', 'repo_bc_' || g, 'failed', 'HTTP 500', 5,
                   now() - make_interval(secs => g)
            FROM generate_series(0, %s - 1) g
        """, (count,))


def counts(url):
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM app_repositories GROUP BY status")
        by_status = dict(rows.fetchall())
        attempts = dict(conn.execute(
            "SELECT outcome, count(*) FROM delivery_attempts GROUP BY outcome").fetchall())
        untouched = conn.execute(
            "SELECT count(*) FROM app_repositories WHERE retry_count = 0 "
            "AND status = 'pending_snapshot'").fetchone()[0]
    return by_status, attempts, untouched


def operation_status(url):
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status FROM bulk_operations").fetchone()
    return row[0] if row else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--links", type=int, default=10_000)
    parser.add_argument("--threshold", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    args = parser.parse_args()
    url, redis_url = args.database_url, args.redis_url
    # Killed (timeout, Ctrl-C): stop the consumer too, or it would go on taking this Redis db's
    # jobs in the next run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ensure_database(url)

    env = {**app_env(url, redis_url, 1000), "CIRCUIT_FAILURE_THRESHOLD": str(args.threshold),
           "CIRCUIT_PROBE_SECONDS": "1", "CIRCUIT_PROBE_MAX_SECONDS": "5",
           "APP_RATE_PER_SECOND": str(args.rate), "RETRY_BACKOFF_SECONDS": "5",
           "WATCHDOG_INTERVAL_SECONDS": "1", "DELIVERY_TIMEOUT_S": "5"}
    os.environ.update(env)
    from docora_admin import create_app, db
    from docora_admin.huey_app import huey

    db.migrate(url)
    receiver = Receiver()
    receiver.status = 500
    with tempfile.TemporaryDirectory() as tmp:
        links_dir = make_repositories(Path(tmp), args.links)
        seed(url, receiver, links_dir, args.links)
        app = create_app(env)
        huey.flush()
        client = app.test_client()
        token = client.post("/admin/api/login", json={"username": "bench",
                                                      "password": "bench-password"}).get_json()
        log = open(os.environ.get("BENCH_CONSUMER_LOG") or Path(tmp) / "consumer.log", "wb")
        consumer = subprocess.Popen(
            [str(Path(sys.executable).parent / "huey_consumer"), "app.huey", "-w",
             str(args.workers), "-k", "thread", "-d", "0.05", "-m", "0.5"],
            cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT),
                           "DOCORA_GIT_CACHE": str(Path(tmp) / "cache")},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            time.sleep(2)
            started = time.monotonic()
            response = client.post("/admin/api/retry/all",
                                   headers={"X-CSRFToken": token["csrf_token"]})
            assert response.status_code == 200, response.get_data(as_text=True)
            while True:
                by_status, attempts, untouched = counts(url)
                if (operation_status(url) == "completed" and huey.pending_count() == 0
                        and not by_status.get("scanning")):
                    break
                time.sleep(0.5)
            down_s = time.monotonic() - started
            print(f"down: {args.links:,} links reset and their jobs run in {down_s:.1f} s; "
                  f"{len(receiver.arrivals)} attempts reached the app (circuit threshold "
                  f"{args.threshold}, target ≤ {2 * args.threshold}); attempt log {attempts}; "
                  f"{untouched:,} links held with no attempt counted")

            before = len(receiver.arrivals)
            receiver.status = 200
            recovered = time.monotonic()
            while True:
                by_status, _, _ = counts(url)
                if by_status.get("synced", 0) == args.links:
                    break
                time.sleep(0.5)
            took = time.monotonic() - recovered
            arrivals = sorted(receiver.arrivals[before:])
            busiest, j = 0, 0
            for i, t in enumerate(arrivals):
                while arrivals[j] < t - 1.0:
                    j += 1
                busiest = max(busiest, i - j + 1)
            print(f"recovery: all {args.links:,} delivered {took:.1f} s after the app came "
                  f"back ({args.links / took:,.0f} links/s); busiest second at the app: "
                  f"{busiest} requests (limit {args.rate}/s); bad signatures: "
                  f"{receiver.bad_signatures}")
        finally:
            os.killpg(consumer.pid, signal.SIGINT)
            consumer.wait(30)
            if os.environ.get("BENCH_SHOW_LOG"):
                print((Path(tmp) / "consumer.log").read_text(errors="replace")[-6000:])
            receiver.close()
            huey.flush()


if __name__ == "__main__":
    main()
