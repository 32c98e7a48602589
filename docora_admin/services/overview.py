"""Numbers for the overview and queue pages."""
from .. import db
from ..huey_app import huey
from ..repositories import apps as apps_repo
from ..repositories import names


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
    """The next `limit` waiting jobs (in run order) and the next scheduled ones, each with its
    app's name and its repository's owner/name (None when deleted meanwhile)."""
    waiting = [_job_row(huey.deserialize_task(raw))
               for raw in huey.storage.enqueued_items(limit)]
    scheduled = sorted((_job_row(t) for t in huey.scheduled(limit)),
                       key=lambda job: job["eta"] or 0)
    jobs = [job for job in waiting + scheduled if job["name"] == "snapshot"]
    with db.connection() as conn:
        app_names = names.app_names(conn, {job["app_id"] for job in jobs if job["app_id"]})
        repo_names = names.repository_names(
            conn, {job["repository_id"] for job in jobs if job["repository_id"]})
    for job in waiting + scheduled:
        job["app_name"] = app_names.get(job["app_id"]) if job["name"] == "snapshot" else None
        job["repository"] = (repo_names.get(job["repository_id"])
                             if job["name"] == "snapshot" else None)
    return {"waiting": waiting, "scheduled": scheduled}


def app_names(app_ids):
    """{app_id: app_name} for the given ids (for pages that list operations by app)."""
    with db.connection() as conn:
        return names.app_names(conn, set(app_ids))


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
