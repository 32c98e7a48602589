"""The state /metrics reports besides request timings: links by status, the queue, running bulk
retries and recent delivery attempts. Read at scrape time from PostgreSQL and Redis, so every
web process reports the same numbers and nothing is kept in memory between scrapes."""
from ... import db
from ...repositories import metrics as metrics_repo
from ...repositories import repository_circuit as circuit_repo
from ...repositories import alerts as alerts_repo
from . import overview

# Fixed label values keep the series count bounded whatever the database holds: an unexpected
# status is counted under "other" rather than becoming a new series.
LINK_STATUSES = ("pending_snapshot", "scanning", "synced", "failed")
ATTEMPT_OUTCOMES = ("delivered", "failed", "interrupted", "deferred", "sync_failed",
                    "notice_failed")
ATTEMPT_WINDOW_SECONDS = 300
HELD_REASONS = ("paused", "circuit_open", "deferred")
NOTICE_STATUSES = ("pending", "sent", "failed")
ALERT_CHANNELS = ("webhook", "email")
ALERT_STATUSES = ("pending", "sent", "failed", "folded")


def _fold(counts, known, other=True):
    folded = {name: 0 for name in known}
    if other:
        folded["other"] = 0
    for name, n in counts.items():
        if name in known or other:
            folded[name if name in known else "other"] += n
    return folded


def database_numbers():
    """{"links_by_status", "failed_links", "running_bulk_operations", "recent_attempts",
    "held_apps", "repository_circuits_open", "sync_failed_notices"} from PostgreSQL; raises
    db.DatabaseUnavailable when it does not answer."""
    with db.connection() as conn:
        by_status = metrics_repo.link_counts_by_status(conn)
        running = metrics_repo.count_running_bulk_operations(conn)
        attempts = metrics_repo.attempts_by_outcome_since(conn, ATTEMPT_WINDOW_SECONDS)
        held = metrics_repo.held_apps_by_reason(conn)
        circuits_open = circuit_repo.count_open(conn)
        notices = circuit_repo.notice_counts(conn)
        alert_deliveries = alerts_repo.delivery_counts(conn)
        alert_attempts = alerts_repo.attempt_counts(conn)
    return {"links_by_status": _fold(by_status, LINK_STATUSES),
            "failed_links": by_status.get("failed", 0),
            "running_bulk_operations": running,
            # The table's CHECK constraint allows only these outcomes: no "other".
            "recent_attempts": _fold(attempts, ATTEMPT_OUTCOMES, other=False),
            "held_apps": _fold(held, HELD_REASONS, other=False),
            "repository_circuits_open": circuits_open,
            # The table's CHECK constraint allows only these statuses.
            "sync_failed_notices": _fold(notices, NOTICE_STATUSES, other=False),
            # Both tables' CHECK constraints bound the labels.
            "alert_deliveries": {(c, s): alert_deliveries.get((c, s), 0)
                                 for c in ALERT_CHANNELS for s in ALERT_STATUSES},
            "alert_attempts": {(c, r): alert_attempts.get((c, r == "sent"), 0)
                               for c in ALERT_CHANNELS for r in ("sent", "failed")}}


def queue_numbers():
    """{"waiting": n, "scheduled": n} jobs in the Huey queue; raises redis.RedisError when Redis
    does not answer."""
    stats = overview.queue_stats()
    return {"waiting": stats["queued"], "scheduled": stats["scheduled"]}
