"""Every link that should have a job gets one: the periodic pass that makes "nothing acknowledged
is lost" true whatever process or service died when.

It finds (repositories.link_sweeps and job_outbox have the queries):
- unpushed jobs: links committed due whose push never came (an outbox mark left behind), pushed
  again at once whatever the backlog;
- lost jobs: a due pending link older than the oldest job still waiting in the queue, by a grace
  period. A process killed between its commit and its push, Redis restarted empty, a job taken off
  the queue by a worker that then died before claiming: all look like this;
- expired leases: a link claimed by a job that stopped renewing (its worker died);
- re-scans: synced links due to be scanned again;
and queues each with a new generation, so a job that was only late, not lost, becomes a no-op
when it finally runs. Every consumer process runs it (services/jobs/watchdog.py); a Redis lock lets
one of them do it per interval.
"""
import logging
import time

from ... import db, runtime
from ...repositories import job_outbox, link_sweeps
from . import job_queue

log = logging.getLogger(__name__)

BATCH = 5000
TIME_BUDGET_S = 20
# A mark this old had its push come long since (a push follows its commit within milliseconds,
# a chunk's within a second or two); older, the push never came.
PUSH_GRACE_S = 10
OUTBOX_BATCH = 50


def _queue(rows, mark=None):
    if not rows:
        return 0
    job_queue.push_snapshot_jobs(job_queue.apps_in_turn(
        [(r["app_id"], r["repository_id"], r["retry_operation_id"], r["job_generation"])
         for r in rows]), rows[0]["stamp"])
    job_queue.pushed(mark)
    return len(rows)


def _drain(take, what, level=logging.WARNING):
    """Run `take(conn)` batch after batch (each its own transaction with its outbox mark,
    queued right after its commit) until a batch comes back short or the time budget is spent;
    return the count."""
    started, total = time.monotonic(), 0
    while time.monotonic() - started < TIME_BUDGET_S:
        mark = None
        with db.connection() as conn:
            rows = take(conn)
            if rows:
                mark = job_queue.note(conn, rows[0]["stamp"],
                                      [(r["app_id"], r["repository_id"]) for r in rows])
        total += _queue(rows, mark)
        if len(rows) < BATCH:
            break
    if total:
        log.log(level, "sweeper: queued %d link(s): %s", total, what)
    return total


def requeue_lost_jobs():
    """Queue again every due pending link whose job is no longer in the queue."""
    settings = runtime.settings()
    # Read the queue's head before PostgreSQL: a job pushed in between is newer than the head
    # we compare with, so it can only make us wait, never requeue it.
    head = job_queue.oldest_waiting_stamp()
    return _drain(lambda conn: link_sweeps.requeue_lost(
        conn, head, settings.lost_job_grace_seconds, BATCH), "their job was lost")


def release_expired_leases():
    """Queue again every link whose delivering job stopped renewing its lease."""
    return _drain(lambda conn: link_sweeps.release_expired_leases(conn, BATCH),
                  "the worker delivering them stopped")


def queue_rescans():
    """Queue synced links due for a re-scan."""
    minutes = runtime.settings().rescan_interval_minutes
    return _drain(lambda conn: link_sweeps.take_rescans(conn, BATCH, minutes),
                  "due for a re-scan", logging.INFO)


def push_unpushed(grace_seconds=PUSH_GRACE_S):
    """Push again the jobs of every outbox mark older than the grace: committed due, but the
    push after the commit never came (a process died in between, Redis refused it). Each mark's
    links that still wait are pushed at once (a back-off's at its time), whatever the queue
    holds; marks are locked while pushed, so two processes never push the same one."""
    total, started = 0, time.monotonic()
    while time.monotonic() - started < TIME_BUDGET_S:
        with db.connection() as conn:
            marks = job_outbox.take_unpushed(conn, grace_seconds, OUTBOX_BATCH)
            for mark in marks:
                now = [(r["app_id"], r["repository_id"], r["retry_operation_id"],
                        r["job_generation"]) for r in mark["links"] if not r["later"]]
                if now:
                    job_queue.push_snapshot_jobs(job_queue.apps_in_turn(now), mark["stamp"])
                for r in mark["links"]:
                    if r["later"]:
                        job_queue.schedule_snapshot(r["app_id"], r["repository_id"],
                                                    r["retry_operation_id"],
                                                    r["job_generation"], r["next_attempt_at"])
                total += len(mark["links"])
            job_outbox.clear(conn, [mark["id"] for mark in marks])
        if len(marks) < OUTBOX_BATCH:
            break
    if total:
        log.warning("sweeper: queued %d link(s) again: committed due, their push never came",
                    total)
    return total


def sweep(release_leases=True):
    """One full pass; returns {what: count}. `release_leases` is False while this process has
    not yet had PostgreSQL for a whole lease (services/jobs/watchdog.py says why)."""
    return {"unpushed": push_unpushed(),
            "lost": requeue_lost_jobs(),
            "leases": release_expired_leases() if release_leases else 0,
            "rescans": queue_rescans()}
