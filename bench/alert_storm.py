"""Benchmark: alerts under flapping circuits, the sender's throughput, and the cost of the
watchdog's alert step (issue 26, item 5).

    .venv/bin/python bench/alert_storm.py [--apps 50] [--flaps 20] [--test-alerts 500]
                                          [--failed 100000]

A database of its own (BENCH_DATABASE_URL, default docora_admin_test_alerts_bench) and Redis db
3 (BENCH_REDIS_URL); in-process, with a local Slack-like webhook (tests/alert_receivers.py).

1. flapping: --apps apps each have their circuit opened (CIRCUIT_FAILURE_THRESHOLD failures
   through delivery_control.record_failed) and closed by an operator (close_circuit), --flaps
   times: the real service functions, each change in its own transaction. Reports the
   transitions, the time per transition (alert recorded with it), the alerts the webhook got
   right after (one per app: the first opening; the rest wait for the cool-down), and after the
   cool-down (one more per app, the last close, with the changes in between folded).
2. sender: --test-alerts test alerts sent to the webhook by sending.send_due: alerts/s.
3. the watchdog's step (sending.tick: the failed-count rule, lost closes, anything due) with
   --failed failed links: p50/p95 of 50 ticks, with the links' failures spread over a day
   (ALERT_FAILED_RISE_MINUTES=15 sees a few hundred) and with all of them in the window.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bulk_retry import app_env, ensure_database, seed  # noqa: E402
from tests.alert_receivers import AlertWebhook  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_admin_test_alerts_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/3"
THRESHOLD = 3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--flaps", type=int, default=20)
    parser.add_argument("--test-alerts", type=int, default=500)
    parser.add_argument("--failed", type=int, default=100_000)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    ensure_database(url)
    webhook = AlertWebhook()
    env = {**app_env(url, redis_url, 1000), "ALERT_WEBHOOK_URL": webhook.url,
           "ALERT_COOLDOWN_MINUTES": "15", "ALERT_FAILED_RISE_COUNT": "50",
           "ALERT_FAILED_RISE_MINUTES": "15",
           "CIRCUIT_FAILURE_THRESHOLD": str(THRESHOLD), "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    from docora_admin import create_app, db
    db.migrate(url)
    create_app(env)
    from docora_admin.services.alerts import sending
    from docora_admin.services.control import delivery_control

    seed(url, 0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE alerts, alert_deliveries, alert_attempts, "
                     "app_delivery_control CASCADE")
        conn.execute("UPDATE alert_rules SET firing = false")
    app_ids = [f"app_bench_{n}" for n in range(1, min(args.apps, 50) + 1)]

    started = time.perf_counter()
    transitions = 0
    for _ in range(args.flaps):
        for app_id in app_ids:
            for _ in range(THRESHOLD):
                with db.connection() as conn:
                    delivery_control.record_failed(conn, app_id, "HTTP 503")
            delivery_control.close_circuit(app_id)
            transitions += 2
    elapsed = time.perf_counter() - started
    per = elapsed / transitions * 1000
    print(f"flapping: {len(app_ids)} apps × {args.flaps} open/close = {transitions} transitions "
          f"in {elapsed:.1f} s ({per:.1f} ms per transition, its {THRESHOLD} failures included)")
    sending.send_due()
    print(f"  alerts sent at once: {len(webhook.bodies)}")
    with db.connection() as conn:
        conn.execute("UPDATE alerts SET due_at = now() WHERE due_at > now()")
        conn.execute("UPDATE alert_deliveries SET next_attempt_at = now() "
                     "WHERE status = 'pending'")
    sending.send_due()
    folded = [body["folded_changes"] for body in webhook.bodies[len(app_ids):]]
    print(f"  after the cool-down: {len(webhook.bodies)} in all "
          f"({len(folded)} more, states {sorted({b['state'] for b in webhook.bodies[len(app_ids):]})}, "
          f"folded changes each {sorted(set(folded))}) for {transitions} transitions")

    webhook.bodies.clear()
    with db.connection() as conn:
        from docora_admin.services.alerts import changes
        for _ in range(args.test_alerts):
            changes.test_alert(conn, "bench")
    started = time.perf_counter()
    while len(webhook.bodies) < args.test_alerts:
        sending.send_due()
    elapsed = time.perf_counter() - started
    print(f"sender: {args.test_alerts} alerts in {elapsed:.2f} s "
          f"({args.test_alerts / elapsed:.0f} alerts/s to a local webhook)")

    seed(url, args.failed)
    for label, spread in (("spread over a day", False), ("all in the window", True)):
        if spread:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("UPDATE app_repositories SET updated_at = now() "
                             "WHERE status = 'failed'")
                conn.execute("VACUUM ANALYZE app_repositories")
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            sending.tick()
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        print(f"tick with {args.failed:,} failed links, {label}: p50 "
              f"{statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms")
    webhook.close()


if __name__ == "__main__":
    main()
