"""Re-sync: deliver everything again. What the app was recorded to have received is forgotten and
a full snapshot is queued, so every current file goes out again as a create.

One link is reset and queued in the request; a whole app is a bulk operation of kind "resync"
(progress, pause, cancel and history like a bulk retry; services/retries/bulk_runner.py works
through it, repositories/retry_links.reset_chunk resets and clears each chunk in one statement).
A link that a job is delivering right now is not touched: clearing its record mid-delivery
would make the job's own records wrong. The single re-sync refuses it; the app's re-sync counts
it as skipped.
"""
import logging

from ... import db, runtime
from ...errors import ApiError
from ...input_values import valid_id
from ...repositories import apps as apps_repo
from ...repositories import bulk_operations as ops_repo
from ...repositories import resync_links, retry_links
from ..delivery import acknowledgements
from ..team import audit
from ..jobs import job_queue
from .retry import start_operation

log = logging.getLogger(__name__)


def resync_link(app_id, repository_id):
    """Forget what the app received of one repository and queue a full snapshot. Returns
    {job_id, files_cleared}. ApiError 400 / 404, 409 while a job is delivering the link."""
    if not valid_id(app_id) or not valid_id(repository_id):
        raise ApiError(400, "app_id and repository_id are required")
    runtime.redis_client().ping()
    with db.connection() as conn:
        due = resync_links.reset_link(conn, app_id, repository_id)
        if due is None:
            status = retry_links.link_status(conn, app_id, repository_id)
            if status is None:
                raise ApiError(404, "App-repository link not found")
            raise ApiError(409, "This link is being delivered right now; re-sync it when that "
                                "attempt ends")
        audit.record(conn, "resync.one", target=f"{app_id}/{repository_id}",
                     details={"app_id": app_id, "repository_id": repository_id,
                              "files_cleared": due["files_cleared"]})
        mark = job_queue.note(conn, due["stamp"], [(app_id, repository_id)])
    acknowledgements.drop_journals([(app_id, repository_id)])
    [job_id] = job_queue.push_snapshot_jobs(
        [(app_id, repository_id, None, due["job_generation"])], due["stamp"])
    job_queue.pushed(mark)
    log.info("%s/%s re-sync queued: %d delivered-file records cleared", app_id, repository_id,
             due["files_cleared"])
    return {"job_id": job_id, "files_cleared": due["files_cleared"]}


def resync_counts(app_id):
    """{links, files}: what a re-sync of the whole app would redo (for its confirm)."""
    with db.connection() as conn:
        if not valid_id(app_id) or apps_repo.get_app(conn, app_id) is None:
            raise ApiError(404, "App not found")
        return resync_links.app_counts(conn, app_id)


def start_app_resync(app_id, requested_by):
    """A bulk operation that re-syncs every link of an app. Returns {operation_id, total}.
    ApiError 404 for an unknown app or one without links, 409 when the app's scope is busy."""
    with db.connection() as conn:
        if not valid_id(app_id) or apps_repo.get_app(conn, app_id) is None:
            raise ApiError(404, "App not found")

    def count(conn, operation_id):
        return ops_repo.insert_app_targets(conn, operation_id, app_id)

    return start_operation(scope="app", app_id=app_id, filter=None, count=count,
                  requested_by=requested_by, nothing="No repositories for this app",
                  kind="resync")
