"""Numbers for the overview and queue pages, and the same numbers as the original Docora admin
API gives them (DOCORA_CONTRACT.md §2: /overview and /queue)."""
import struct
from datetime import datetime, timezone

from ... import db
from ...huey_app import huey
from ...repositories import apps as apps_repo
from ...repositories import delivery_control as control_repo
from ...repositories import failure_causes as causes_repo
from ...repositories import names


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


def _waiting_jobs(limit):
    """The first `limit` waiting jobs, each with queued_at: Huey's priority queue prefixes each
    member with a big-endian microsecond time (job_queue writes the moment the link became
    due there)."""
    storage = huey.storage
    jobs = []
    for member in storage.first_members(limit):
        job = _job_row(huey.deserialize_task(member[8:]))
        job["queued_at"] = datetime.fromtimestamp(struct.unpack(">Q", member[:8])[0] / 1e6,
                                                  timezone.utc)
        jobs.append(job)
    return jobs


def queue_contents(limit=50):
    """The next `limit` waiting jobs (in run order) and the next scheduled ones, each with its
    app's name and its repository's owner/name (None when deleted meanwhile)."""
    waiting = _waiting_jobs(limit)
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
        held = control_repo.count_all_held_links(conn)
        dismissed = causes_repo.count_dismissed(conn)
        app_count = apps_repo.count_apps(conn)
        repository_count = apps_repo.count_repositories(conn)
    return {
        "apps": app_count,
        "repositories": repository_count,
        "links": sum(by_status.values()),
        "by_status": dict(sorted(by_status.items())),
        # Failed links that need attention; the dismissed ones (still `failed` in by_status)
        # are counted apart.
        "failed": by_status.get("failed", 0) - dismissed,
        "dismissed": dismissed,
        "in_progress": by_status.get("pending_snapshot", 0) + by_status.get("scanning", 0),
        # Of those, the ones no worker touches until a release (shown apart: "held", never
        # "being delivered").
        "held": held,
        **queue_stats(),
    }


# --- the original Docora admin API's shapes ------------------------------------------------

def _iso(moment):
    if moment is None:
        return None
    # Huey's etas are naive UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).isoformat()


def overview_json():
    """GET /overview: the overview page's numbers under the original's names. As in the
    original, total_repositories counts (app, repository) links ("Repository links" on the
    page); repositories_watched counts the repositories. queue_active is the links a snapshot
    job is delivering now (`scanning`, "Delivering" on the page)."""
    numbers = stats()
    return {"total_apps": numbers["apps"], "total_repositories": numbers["links"],
            "failed_notifications": numbers["failed"], "queue_waiting": numbers["queued"],
            "queue_active": numbers["by_status"].get("scanning", 0),
            # Ours:
            "total_links": numbers["links"], "repositories_watched": numbers["repositories"],
            "links_in_progress": numbers["in_progress"], "links_held": numbers["held"],
            "dismissed_notifications": numbers["dismissed"],
            "queue_scheduled": numbers["scheduled"], "links_by_status": numbers["by_status"]}


def _queue_job_json(job, status):
    return {"id": job["id"], "name": job["name"], "app_name": job["app_name"],
            "repository_name": job["repository"], "status": status,
            "created_at": _iso(job.get("queued_at")), "processed_on": None,
            # Ours:
            "app_id": job["app_id"], "repository_id": job["repository_id"],
            "operation_id": job["operation_id"], "run_at": _iso(job["eta"])}


def queue_json(limit=50):
    """GET /queue: the queue page's counts and jobs under the original's names. Huey keeps no
    tally of finished jobs, so completed and failed count where the jobs left their links:
    delivered (`synced`) and `failed`; active is the links being delivered (`scanning`);
    waiting and delayed are the queue's waiting and scheduled jobs. A job waiting has
    created_at (when it was queued); a delayed one has run_at; none has processed_on (a job
    being run has left the queue)."""
    numbers = stats()
    jobs = queue_contents(limit)
    by_status = numbers["by_status"]
    return {"status": {"waiting": numbers["queued"], "active": by_status.get("scanning", 0),
                       "completed": by_status.get("synced", 0),
                       "failed": by_status.get("failed", 0), "delayed": numbers["scheduled"]},
            "jobs": [_queue_job_json(job, "waiting") for job in jobs["waiting"]]
            + [_queue_job_json(job, "delayed") for job in jobs["scheduled"]]}
