"""Benchmark: the audit trail's page query at a million events, per filter.

    TEST_DATABASE_URL=… .venv/bin/python bench/audit_page.py [--events 1000000]

Empties audit_events in the given (test) database and fills it with N events spread over 400
days (20 actors, 12 actions in 4 areas), then times repositories.audit_events.page (51 rows,
as the page asks) for each filter, first page and a page deep in the trail (keyset), median of
5 runs each. Also times the retention pruning of the oldest 1 % of events.
"""
import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docora_admin import db  # noqa: E402
from docora_admin.repositories import audit_events  # noqa: E402

ACTIONS = ["login.success", "login.failure", "logout", "retry.one", "retry.now",
           "retry.bulk_start", "operation.cancel", "operation.pause", "app.pause", "app.resume",
           "account.create", "account.role_change"]


def fill(conn, n):
    conn.execute("TRUNCATE audit_events")
    conn.execute("""
        INSERT INTO audit_events (occurred_at, actor, source_address, action, target, details)
        SELECT now() - interval '400 days' + (g::float / %(n)s) * interval '400 days',
               'user' || (g %% 20), '10.0.' || (g %% 250) || '.1',
               (%(actions)s::text[])[1 + (g * 7 %% 12)], 'app_' || (g %% 5000) || '/repo',
               jsonb_build_object('n', g)
        FROM generate_series(1, %(n)s) g
    """, {"n": n, "actions": ACTIONS})
    conn.execute("ANALYZE audit_events")


def timed(conn, **kwargs):
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        rows = audit_events.page(conn, limit=51, **kwargs)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    url = os.environ["TEST_DATABASE_URL"]
    db.migrate(url)
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        started = time.perf_counter()
        fill(conn, args.events)
        print(f"filled {args.events:,} events in {time.perf_counter() - started:.1f} s")
        ids = conn.execute("SELECT min(id) AS lo, max(id) AS hi FROM audit_events").fetchone()
        now = datetime.now(timezone.utc)
        cases = [
            ("newest, no filter", {}),
            ("actor", {"actor": "user7"}),
            ("action (exact)", {"action": "retry.one"}),
            ("action (area: retry)", {"action": "retry"}),
            ("action with no events", {"action": "audit.prune"}),
            ("area with no events", {"action": "session"}),
            ("actor with no events", {"actor": "nobody"}),
            ("one day, 200 days ago", {"since": now - timedelta(days=200),
                                       "until": now - timedelta(days=199)}),
            ("actor + action + day", {"actor": "user7", "action": "retry",
                                      "since": now - timedelta(days=200),
                                      "until": now - timedelta(days=199)}),
            ("deep page (no filter)", {"before_id": (ids["lo"] + ids["hi"]) // 2}),
            ("deep page (actor)", {"actor": "user7",
                                   "before_id": ids["lo"] + (ids["hi"] - ids["lo"]) // 10}),
        ]
        for name, kwargs in cases:
            ms, rows = timed(conn, **kwargs)
            print(f"{name:<24} {ms:8.2f} ms  ({len(rows)} rows)")
        with conn.transaction():
            started = time.perf_counter()
            pruned = 0
            cutoff = now - timedelta(days=396)
            while batch := audit_events.prune_before(conn, cutoff):
                pruned += batch
        print(f"pruned {pruned:,} events (1 %) in {(time.perf_counter() - started):.2f} s")
        conn.execute("TRUNCATE audit_events")


if __name__ == "__main__":
    main()
