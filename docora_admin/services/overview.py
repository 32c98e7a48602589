"""Numbers for the overview and queue pages."""
from .. import db
from ..huey_app import huey
from ..repositories import apps as apps_repo


def queue_stats():
    """Jobs waiting in the Huey queue and scheduled for later."""
    return {"queued": huey.pending_count(), "scheduled": huey.scheduled_count()}


def stats():
    """Apps, links by status, failed links and queued jobs."""
    with db.connection() as conn:
        by_status = apps_repo.link_counts_by_status(conn)
        app_count = apps_repo.count_apps(conn)
    return {
        "apps": app_count,
        "links": sum(by_status.values()),
        "by_status": dict(sorted(by_status.items())),
        "failed": by_status.get("failed", 0),
        **queue_stats(),
    }
