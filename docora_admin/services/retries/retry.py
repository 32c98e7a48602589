"""Retrying failed links: one at a time, or in bulk (all, one app, or a selection) through a
Huey task (services/retries/bulk_runner.py works through it).

A bulk retry is started by a request that only counts and records: the operation is frozen at
the request's time (its targets are the links failed then, in scope), its progress hash is written
and one task is queued. A selection is a filter (app, search, failed-since range: the same filter
as the lists, repositories/link_filters.py) or a list of links; a list, and "the links that failed
again in operation X", are frozen as a target table (at most MAX_SELECTED_LINKS links from a
request).
"""
import logging

from ... import db, runtime
from ...errors import ApiError
from ...input_values import valid_id
from ...repositories import bulk_operations as ops_repo
from ...repositories import failed_links, retry_links, snapshot_links
from ..team import audit
from . import bulk_progress
from ..jobs import job_queue
from .operations import operation_json

log = logging.getLogger(__name__)

MAX_SELECTED_LINKS = 1000


def retry_one(app_id, repository_id):
    """Reset one failed link and queue its snapshot job; return the job id.

    ApiError 400 for missing ids, 404 for an unknown link, 409 when it is not failed."""
    return _queue_one(app_id, repository_id, retry_links.reset_failed_link,
                      "Only failed entries can be retried", "retry.one")


def retry_now(app_id, repository_id):
    """Skip the backoff of a link waiting for its next attempt: queue the attempt now. Returns
    the job id. ApiError 404 for an unknown link, 409 when it is not waiting."""
    return _queue_one(app_id, repository_id, snapshot_links.skip_wait,
                      "Only a link waiting for its next attempt can be retried now", "retry.now")


def _queue_one(app_id, repository_id, make_due, refusal, action):
    """Make one link due for a new job generation with `make_due` (one guarded statement),
    audit it as `action` in the same transaction, and queue its job after the commit; return
    the job id."""
    if not valid_id(app_id) or not valid_id(repository_id):
        raise ApiError(400, "app_id and repository_id are required")
    runtime.redis_client().ping()  # fail before changing anything when the queue is down
    with db.connection() as conn:
        due = make_due(conn, app_id, repository_id)
        if due is None:
            if retry_links.link_status(conn, app_id, repository_id) is None:
                raise ApiError(404, "App-repository link not found")
            raise ApiError(409, refusal)
        audit.record(conn, action, target=f"{app_id}/{repository_id}",
                     details={"app_id": app_id, "repository_id": repository_id})
        mark = job_queue.note(conn, due["stamp"], [(app_id, repository_id)])
    # Queued after the commit so the job never sees the row before its change. Should the push
    # fail now, the link is due with no job and its outbox mark: the sweeper pushes it.
    [job_id] = job_queue.push_snapshot_jobs(
        [(app_id, repository_id, due["retry_operation_id"], due["job_generation"])],
        due["stamp"])
    job_queue.pushed(mark)
    log.info("%s/%s queued (generation %d)", app_id, repository_id, due["job_generation"])
    return job_id


def estimate(app_id=None, search=None, since=None, until=None, cause=None):
    """How many links a bulk retry with this filter would target right now (dismissed links
    are never targets)."""
    if app_id is not None and not valid_id(app_id):
        raise ApiError(400, "app_id is not a valid app id")
    with db.connection() as conn:
        return failed_links.count_failed(conn, app_id=app_id or None, search=search or None,
                                         since=since, until=until, cause=cause or None)


def start_bulk_retry(app_id, requested_by):
    """The seed's retry-all (app_id None) and retry-app: every failed link in scope. Returns
    {operation_id, total}.

    ApiError 404 when nothing is failed, 409 (with operation_id) when the scope is busy."""
    if app_id is not None and not valid_id(app_id):
        raise ApiError(404, "No failed notifications for this app")

    def count(conn, operation_id):
        return failed_links.count_failed(conn, app_id=app_id, search=None)

    return start_operation(scope="app" if app_id else "all", app_id=app_id, filter=None,
                           count=count, requested_by=requested_by,
                           nothing=("No failed notifications for this app" if app_id
                                    else "No failed notifications found"))


def start_selection(selection, requested_by):
    """A bulk retry of a selection (services/retries/selection.py parses it): a filter, a list of
    links, or the links that failed again in an earlier operation. Same answers as
    start_bulk_retry."""
    app_id = selection.get("app_id")
    if "links" in selection:
        def count(conn, operation_id):
            return ops_repo.insert_link_targets(conn, operation_id, selection["links"])
        stored = {"links": len(selection["links"])}
    elif "failed_again_of" in selection:
        def count(conn, operation_id):
            return ops_repo.insert_failed_again_targets(conn, operation_id,
                                                        selection["failed_again_of"])
        stored = {"failed_again_of": selection["failed_again_of"]}
    else:
        def count(conn, operation_id):
            return failed_links.count_failed(
                conn, app_id=app_id, search=selection.get("search"),
                since=selection.get("failed_since"), until=selection.get("failed_until"),
                cause=selection.get("cause"))
        stored = {key: (value.isoformat() if hasattr(value, "isoformat") else value)
                  for key, value in selection.items() if value and key != "app_id"}
    return start_operation(scope="selection", app_id=app_id, filter=stored, count=count,
                           requested_by=requested_by, nothing="No failed notifications match")


def start_operation(*, scope, app_id, filter, count, requested_by, nothing, kind="retry"):
    """Create a bulk operation (kind retry or resync) whose targets `count(conn, id)` freezes
    and counts, write its progress hash and queue its task. Returns {operation_id, total}."""
    runtime.redis_client().ping()
    operation_id = bulk_progress.generate_operation_id()
    settings = runtime.settings()
    with db.connection() as conn:
        # The operation row first (it freezes now() and takes the scope), then its targets, in
        # one transaction: a target list references the row, and nothing stays of a refusal.
        try:
            with conn.transaction():
                op = ops_repo.insert_operation(
                    conn, operation_id=operation_id, scope=scope, app_id=app_id,
                    requested_by=requested_by, chunk_size=settings.bulk_chunk_size, total=0,
                    filter=filter, kind=kind)
                total = count(conn, operation_id)
                if total == 0:
                    raise _NothingToRetry()
                ops_repo.set_total(conn, operation_id, total)
                audit.record(conn, f"{kind}.bulk_start", target=operation_id,
                             actor=requested_by, details={"scope": scope, "app_id": app_id,
                                                          "filter": filter, "total": total})
        except ops_repo.ScopeBusy:
            _refuse_if_busy(conn, app_id)
            raise ApiError(409, "A bulk operation is already running for this scope") from None
        except _NothingToRetry:
            # A running operation explains why nothing is failed: say so rather than 404.
            _refuse_if_busy(conn, app_id)
            raise ApiError(404, nothing) from None
    try:
        bulk_progress.create_progress(operation_id, total, record={**op, "total": total})
        job_queue.queue_bulk_run(operation_id)
    except Exception:
        # Undo, so a failed request leaves nothing behind that a resume could pick up.
        with db.connection() as conn:
            ops_repo.delete_operation(conn, operation_id)
            audit.record(conn, f"{kind}.bulk_abort", target=operation_id,
                         actor=requested_by, details={"reason": "its task could not be queued"})
        raise
    log.info("bulk %s %s started by %s: scope=%s filter=%s total=%d", kind, operation_id,
             requested_by, op["scope"], filter, total)
    return {"operation_id": operation_id, "total": total}


class _NothingToRetry(Exception):
    """No target in scope: the start is rolled back."""


def _refuse_if_busy(conn, app_id):
    running = ops_repo.running_in_scope(conn, app_id)
    if running:
        raise ApiError(409, "A bulk operation is already running for "
                       + ("this app" if app_id else "all apps"), operation_id=running)


def cancel(operation_id):
    """Request cancellation; rows not yet reached stay failed. ApiError 404 for an unknown id,
    409 (with the operation's final status, and nothing changed) when it already ended."""
    op = _change(operation_id, ops_repo.request_cancel,
                 lambda op: f"Operation already {op['status']}", "operation.cancel")
    bulk_progress.cancel_progress(operation_id)
    if op["status"] == "cancelled":  # it was paused: ended here
        bulk_progress.write_from_record(op)
    else:
        bulk_progress.set_status(operation_id, "cancelling", record=op)
    return operation_json(op)


def pause(operation_id):
    """Pause a running bulk operation after its current chunk; it keeps its cursor. ApiError 404
    for an unknown id, 409 when it is not running."""
    op = _change(operation_id, ops_repo.request_pause,
                 lambda op: f"Only a running operation can be paused; it is {op['status']}",
                 "operation.pause")
    bulk_progress.set_status(operation_id, "paused", record=op)
    return operation_json(op)


def resume(operation_id):
    """Resume a paused bulk operation from its cursor. ApiError 404 / 409 as for pause."""
    runtime.redis_client().ping()
    op = _change(operation_id, ops_repo.resume,
                 lambda op: f"Only a paused operation can be resumed; it is {op['status']}",
                 "operation.resume")
    bulk_progress.set_status(operation_id, "running", record=op)
    # Should this push be lost, the operation's heartbeat stops and the watchdog resumes it.
    job_queue.queue_bulk_run(operation_id)
    return operation_json(op)


def _change(operation_id, change, refusal, action):
    """Apply `change(conn, id)` to an operation and audit it as `action` in the same
    transaction. ApiError 404 for an unknown id, 409 with `refusal(op)` when it did not apply
    (nothing changed)."""
    if not bulk_progress.is_valid_operation_id(operation_id):
        raise ApiError(404, "Operation not found or expired")
    with db.connection() as conn:
        op, changed = change(conn, operation_id)
        if changed:
            audit.record(conn, action, target=operation_id,
                         details={"scope": op["scope"], "app_id": op["app_id"],
                                  "kind": op["kind"]})
    if op is None:
        raise ApiError(404, "Operation not found or expired")
    if not changed:
        raise ApiError(409, refusal(op), operation_status=op["status"])
    return op
