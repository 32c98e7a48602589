"""Queueing a link's next job when its job ends without delivering it: given back untried (its
repository busy, or being fetched by another worker of this machine, or the app's turn seconds
away), or scheduled after a backoff or the app's Retry-After. Always after the commit that made
the link due, and best effort: should Redis refuse the push, the outbox mark left behind has
the sweeper queue the link (services/jobs/sweeper.py)."""
import logging

import redis

from ... import db
from ...repositories import snapshot_links
from ..jobs import job_queue
from .patience import patiently

log = logging.getLogger(__name__)

BUSY_DELAY_S = 3  # a link whose repository another job is fetching is tried again after this


def later(claimed, where, delay=BUSY_DELAY_S):
    """Another job is fetching the same repository, or the app's next turn is seconds away:
    give the link back, due `delay` seconds later (a new generation, scheduled), and free this
    worker. Nothing is counted or logged."""
    def record():
        with db.connection() as conn:
            return job_queue.noted(conn, snapshot_links.release_claim(conn, claimed, delay))

    due = patiently(record, where)
    if due is not None:
        schedule(due, where)
    return "pending_snapshot"


def given_back(claimed, where):
    """Another worker of this machine is fetching the repository, for seconds, and other jobs
    wait: give the link back, due now (a new generation), queued behind those jobs
    (job_queue.push_given_back), and free this worker for them. Nothing is counted or logged."""
    def record():
        with db.connection() as conn:
            return job_queue.noted(conn, snapshot_links.release_claim(conn, claimed, 0))

    due = patiently(record, where)
    if due is not None:
        best_effort(lambda: (job_queue.push_given_back(
            due["app_id"], due["repository_id"], due["retry_operation_id"], due["job_generation"],
            due["next_attempt_at"]), job_queue.pushed(due.get("mark"))), where)
    return "pending_snapshot"


def schedule(due, where):
    """Queue the link's next job at its next_attempt_at (a backoff, or a delay)."""
    best_effort(lambda: (job_queue.schedule_snapshot(
        due["app_id"], due["repository_id"], due["retry_operation_id"], due["job_generation"],
        due["next_attempt_at"]), job_queue.pushed(due.get("mark"))), where)


def best_effort(action, where):
    # Queueing after the commit: should Redis refuse now, the link is due and the sweeper queues
    # it once Redis answers.
    try:
        action()
    except redis.RedisError as exc:
        log.warning("%s: not queued (%s); the sweeper will", where, exc.__class__.__name__)
