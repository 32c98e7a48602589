"""Benchmark: links committed due whose push died with their consumer, behind a backlog.

    .venv/bin/python bench/unpushed_jobs.py [--rows 50000] [--chunk-size 1000]
                                            [--checkout PATH] [--timeout 900]

Seeds --rows failed links (bench/bulk_retry.py's seed: 50 apps, repositories that point
nowhere, so each job fails fast), POSTs /admin/api/retry/all and lets a real consumer reset and
queue them. After a third of them, Redis writes are paused (CLIENT PAUSE WRITE), so the next
chunk commits but its push blocks; the consumer is SIGKILLed right then, Redis unpaused and a
new consumer (4 workers) started. The queue then holds every job pushed before the kill: a
backlog of tens of thousands.

It reports how many links were committed without a job and how long after the kill the new
consumer queued them again (its sweeper's log line: "their push never came" with the job
outbox, "their job was lost" without one), how many jobs were still waiting then, and how long
the bulk retry took to finish after the kill.

--checkout runs both consumers from another checkout of this repository (same .venv), e.g. the
commit before the job outbox (`git worktree add /tmp/before <commit>`), for the "before"
numbers; that code ignores the outbox table and columns the newer migrations added.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bulk_retry import DEFAULT_REDIS, app_env, build_app, ensure_database, seed  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_admin_bench_unpushed"
REQUEUED = re.compile(r"^\[([\d\- :,]+)\].*sweeper: queued (\d+) link\(s\).*"
                      r"(their push never came|their job was lost)", re.M)


class Consumer:
    def __init__(self, checkout, env, workers):
        self.log = tempfile.NamedTemporaryFile(prefix="consumer-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "huey_consumer"), "app.huey", "-w", str(workers),
             "-k", "thread", "-d", "0.05", "-m", "0.5"],
            cwd=checkout, env={**os.environ, **env, "PYTHONPATH": str(checkout),
                               "WATCHDOG_INTERVAL_SECONDS": "1"},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while "consumer started" not in self.text().lower():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("huey_consumer did not start:\n" + self.text())
            time.sleep(0.05)

    def text(self):
        return Path(self.log.name).read_text(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def operation(url, operation_id):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT succeeded, status, extract(epoch FROM finished_at) "
                            "FROM bulk_operations WHERE id = %s", (operation_id,)).fetchone()


def wait_until(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    url, redis_url = args.database_url, args.redis_url

    ensure_database(url)
    control = redis.Redis.from_url(redis_url)
    control.flushdb()
    _, client, headers = build_app(url, redis_url, args.chunk_size)
    seed(url, args.rows)
    env = {**app_env(url, redis_url, args.chunk_size), "BULK_CHUNK_DELAY_MS": "20"}
    first = Consumer(args.checkout, env, workers=1)
    try:
        return run(args, url, redis_url, client, headers, control, env, first)
    finally:
        first.kill()


def run(args, url, redis_url, client, headers, control, env, first):
    operation_id = client.post("/admin/api/retry/all", headers=headers,
                               json={}).get_json()["data"]["operation_id"]
    wait_until(lambda: operation(url, operation_id)[0] >= args.rows // 3, 120)
    control.execute_command("CLIENT", "PAUSE", "60000", "WRITE")  # pushes block from here
    at_pause = operation(url, operation_id)[0]
    if not wait_until(lambda: operation(url, operation_id)[0] > at_pause, 30):
        print("no chunk committed while Redis was paused")
        return 1
    first.kill()
    killed = time.time()
    unpushed = operation(url, operation_id)[0] - at_pause
    control.execute_command("CLIENT", "UNPAUSE")

    from docora_admin.huey_app import huey

    second = Consumer(args.checkout, env, workers=4)
    try:
        found = wait_until(lambda: REQUEUED.search(second.text()), args.timeout, interval=0.2)
        if found is None:
            print(f"no requeue within {args.timeout:.0f} s of the kill")
            return 1
        at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        waiting = control.zcard(huey.storage.queue_key)
        done = wait_until(lambda: (op := operation(url, operation_id))[1] == "completed" and op,
                          args.timeout, interval=0.5)
    finally:
        second.kill()
    print(f"checkout: {args.checkout}")
    print(f"{args.rows:,} links, chunk {args.chunk_size}: {unpushed:,} committed without a job "
          f"at the kill")
    print(f"queued again {at - killed:.1f} s after the kill ({found.group(2)} links, "
          f"'{found.group(3)}'), {waiting:,} jobs still waiting then")
    if done:
        print(f"bulk retry completed {float(done[2]) - killed:.1f} s after the kill")
    return 0


if __name__ == "__main__":
    sys.exit(main())
