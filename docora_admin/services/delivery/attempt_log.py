"""Keeping the attempt log bounded: attempts older than ATTEMPT_LOG_RETENTION_DAYS are deleted
by an hourly task, in batches so that no statement holds locks for long. A bulk operation's
outcome counters live on its own row and are not affected."""
import logging

from ... import db, runtime
from ...repositories import delivery_attempts

log = logging.getLogger(__name__)


def prune(max_batches=100):
    """Delete attempts past the retention; return how many."""
    days = runtime.settings().attempt_log_retention_days
    total = 0
    for _ in range(max_batches):
        with db.connection() as conn:
            deleted = delivery_attempts.prune_older_than(conn, days)
        total += deleted
        if deleted < 10_000:
            break
    if total:
        log.info("attempt log: pruned %d attempt(s) older than %d days", total, days)
    return total
