"""Keeping the attempt log bounded: attempts older than ATTEMPT_LOG_RETENTION_DAYS are deleted
by an hourly task, in batches so that no statement holds locks for long. A bulk operation's
outcome counters live on its own row and are not affected.

The attempt inspector's details (each attempt's last request and the app's answer) are kept
less long: cleared after ATTEMPT_DETAIL_RETENTION_DAYS, and beyond the newest
ATTEMPT_DETAIL_PER_LINK attempts of each link, by the same hourly task (prune_details); the
attempt row itself stays until its own retention."""
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


def prune_details(max_batches=100):
    """Clear the request/response details past their retention (days, then the per-link cap);
    return how many attempts lost theirs."""
    settings = runtime.settings()
    total = 0
    for clear, bound in ((delivery_attempts.clear_details_older_than,
                          settings.attempt_detail_retention_days),
                         (delivery_attempts.clear_details_beyond,
                          settings.attempt_detail_per_link)):
        for _ in range(max_batches):
            with db.connection() as conn:
                cleared = clear(conn, bound)
            total += cleared
            if cleared < 10_000:
                break
    if total:
        log.info("attempt log: cleared the request/response details of %d attempt(s) (kept %d "
                 "days, the newest %d per link)", total, settings.attempt_detail_retention_days,
                 settings.attempt_detail_per_link)
    return total
