"""Numbers for the overview and queue pages."""
from .. import db
from ..huey_app import huey
from ..repositories import apps as apps_repo


def queue_stats():
    """Jobs waiting in the Huey queue and scheduled for later."""
    return {"queued": huey.pending_count(), "scheduled": huey.scheduled_count()}


def _job_row(task):
    args = list(task.args or ())
    return {"id": task.id, "name": task.name, "app_id": args[0] if args else None,
            "repository_id": args[1] if len(args) > 1 else None,
            "operation_id": args[2] if len(args) > 2 else (args[0] if task.name ==
                                                            "run_bulk_retry" else None),
            "eta": task.eta, "retries": task.retries}


def queue_contents(limit=50):
    """The next `limit` waiting jobs (in run order) and the next scheduled ones."""
    waiting = [huey.deserialize_task(raw) for raw in huey.storage.enqueued_items(limit)]
    scheduled = huey.scheduled(limit)
    return {"waiting": [_job_row(t) for t in waiting],
            "scheduled": sorted((_job_row(t) for t in scheduled),
                                key=lambda job: job["eta"] or 0)}


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
        "in_progress": by_status.get("pending_snapshot", 0) + by_status.get("scanning", 0),
        **queue_stats(),
    }
