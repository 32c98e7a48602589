"""Retrying failed links: one at a time from a request, or in bulk through a Huey task.

A bulk retry is started by a request that only counts and records (start_bulk_retry), and worked
through by run_bulk_retry in chunks: each chunk resets still-failed targets, records counters and
the cursor in one transaction, then queues the snapshot jobs. A worker killed between chunks
leaves a resumable operation; a killed one mid-chunk leaves nothing half-written, because the
chunk's transaction is all or nothing.
"""
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from .. import db, runtime
from ..errors import ApiError
from ..repositories import bulk_operations as ops_repo
from ..repositories import retry_links
from . import bulk_progress, job_queue

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 50


def _valid_id(value):
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and "\x00" not in value


def retry_one(app_id, repository_id):
    """Reset one failed link and queue its snapshot job; return the job id.

    ApiError 400 for missing ids, 404 for an unknown link, 409 when it is not failed."""
    if not _valid_id(app_id) or not _valid_id(repository_id):
        raise ApiError(400, "app_id and repository_id are required")
    runtime.redis_client().ping()  # fail before changing anything when the queue is down
    with db.connection() as conn:
        if retry_links.reset_failed_link(conn, app_id, repository_id) is None:
            if retry_links.link_status(conn, app_id, repository_id) is None:
                raise ApiError(404, "App-repository link not found")
            raise ApiError(409, "Only failed entries can be retried")
    # Queued after the commit so the job never sees the row still failed. Should the push fail
    # now, the link sits in pending_snapshot and the scheduler queues it.
    return job_queue.queue_snapshot(app_id, repository_id)


def estimate(app_id=None):
    """How many links a bulk retry in this scope would target right now."""
    if app_id is not None and not _valid_id(app_id):
        raise ApiError(400, "app_id is not a valid app id")
    with db.connection() as conn:
        return retry_links.count_failed(conn, app_id)


def start_bulk_retry(app_id, requested_by):
    """Freeze the failed links in scope (one app, or all when app_id is None), record the
    operation, create its progress hash and queue the task. Returns {operation_id, total}.

    ApiError 404 when nothing is failed, 409 (with operation_id) when the scope is busy."""
    from ..tasks import run_bulk_retry

    if app_id is not None and not _valid_id(app_id):
        raise ApiError(404, "No failed notifications for this app")
    runtime.redis_client().ping()
    operation_id = bulk_progress.generate_operation_id()
    settings = runtime.settings()
    with db.connection() as conn:
        total = retry_links.count_failed(conn, app_id)
        if total == 0:
            # A running operation explains why nothing is failed: say so rather than 404.
            _refuse_if_busy(conn, app_id)
            raise ApiError(404, "No failed notifications for this app" if app_id
                           else "No failed notifications found")
        try:
            op = ops_repo.insert_operation(
                conn, operation_id=operation_id, scope="app" if app_id else "all", app_id=app_id,
                requested_by=requested_by, chunk_size=settings.bulk_chunk_size, total=total)
        except ops_repo.ScopeBusy:
            conn.rollback()
            _refuse_if_busy(conn, app_id)
            raise ApiError(409, "A bulk retry is already running for this scope") from None
    try:
        bulk_progress.create_progress(operation_id, total)
        run_bulk_retry(operation_id)
    except Exception:
        # Undo, so a failed request leaves nothing behind that a resume could pick up.
        with db.connection() as conn:
            ops_repo.delete_operation(conn, operation_id)
        raise
    log.info("bulk retry %s started by %s: scope=%s total=%d", operation_id, requested_by,
             op["scope"], total)
    return {"operation_id": operation_id, "total": total}


def _refuse_if_busy(conn, app_id):
    running = ops_repo.running_in_scope(conn, app_id)
    if running:
        raise ApiError(409, "A bulk retry is already running for "
                       + ("this app" if app_id else "all apps"), operation_id=running)


def run_bulk_retry(operation_id):
    """Work through an operation's frozen targets chunk by chunk until done or cancelled.

    Safe to run twice at once or after a crash: each chunk locks the operation row, reads the
    cursor it left, and resets only rows still failed. While PostgreSQL works on one chunk, a
    helper thread queues the jobs of the previous one (the SQL and the Redis push each take
    about half of a chunk's time, so overlapping them nearly doubles the rate)."""
    _sync_progress_from_database(operation_id)
    # An optional pause between chunks throttles the load a huge retry puts on the apps.
    delay = runtime.settings().bulk_chunk_delay_ms / 1000
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-enqueue") as pusher:
        pending = None
        while True:
            rows = _reset_one_chunk(operation_id)
            if pending is not None:
                pending.result()  # at most one chunk in flight; re-raise a failed push
                pending = None
            if rows is None:
                return
            pending = pusher.submit(_queue_chunk, operation_id, rows)
            if delay:
                time.sleep(delay)


def _run_one_chunk(operation_id):
    """One chunk, start to end (reset, then queue). Returns the number of links queued, or
    None when the operation has ended."""
    rows = _reset_one_chunk(operation_id)
    if rows is not None:
        _queue_chunk(operation_id, rows)
        return len(rows)
    return None


def _queue_chunk(operation_id, rows):
    # The rows are committed as pending_snapshot and counted. If this process dies before the
    # push, the scheduler's pass over pending_snapshot links queues them instead.
    job_queue.enqueue_snapshots([(r["app_id"], r["repository_id"]) for r in rows], operation_id)
    bulk_progress.increment_progress(operation_id, succeeded=len(rows))


def _reset_one_chunk(operation_id):
    """Reset one chunk in one transaction. Returns the reset links, or None when the operation
    has ended (or was already over)."""
    with db.connection() as conn:
        op = ops_repo.get_operation(conn, operation_id, for_update=True)
        if op is None or op["status"] not in ops_repo.ACTIVE:
            return None
        if op["cancel_requested"] or bulk_progress.is_cancelled(operation_id):
            finished = ops_repo.finish(conn, operation_id, "cancelled")
            conn.commit()
            _publish_final(finished)
            return None
        cursor = ((op["cursor_updated_at"], str(op["cursor_link_id"]))
                  if op["cursor_updated_at"] else retry_links.CURSOR_START)
        chunk = retry_links.next_chunk(
            conn, app_id=op["app_id"], frozen_at=op["frozen_at"], after_updated_at=cursor[0],
            after_id=cursor[1], limit=op["chunk_size"])
        if not chunk:
            finished = ops_repo.finish(conn, operation_id, "completed")
            conn.commit()
            _publish_final(finished)
            return None
        rows = retry_links.reset_links(conn, [row["id"] for row in chunk])
        # Rows of the chunk that left `failed` meanwhile are passed by the cursor and end up
        # counted as skipped when the operation finishes.
        ops_repo.record_chunk(conn, operation_id, succeeded=len(rows), failed=0,
                              cursor_updated_at=chunk[-1]["updated_at"],
                              cursor_link_id=chunk[-1]["id"])
    return rows


def _sync_progress_from_database(operation_id):
    """(Re)write the Redis hash from PostgreSQL: a resumed operation may have lost increments
    between its last commit and its death, or its hash may have expired."""
    with db.connection() as conn:
        op = ops_repo.get_operation(conn, operation_id)
    if op is None or op["status"] not in ops_repo.ACTIVE:
        return
    bulk_progress.write_from_record(op)


def _publish_final(op):
    bulk_progress.write_from_record(op)


def progress(operation_id):
    """Live progress of an operation, from Redis while its hash lives, else from PostgreSQL.

    ApiError 404 for an id that never existed (or is malformed)."""
    if not bulk_progress.is_valid_operation_id(operation_id):
        raise ApiError(404, "Operation not found or expired")
    live = bulk_progress.get_progress(operation_id)
    with db.connection() as conn:
        op = ops_repo.get_operation(conn, operation_id)
    if op is None:
        raise ApiError(404, "Operation not found or expired")
    result = operation_json(op)
    if live is not None and op["status"] in ops_repo.ACTIVE:
        # Redis moves first (PostgreSQL commits per chunk); take the fresher counters.
        for field in bulk_progress.COUNTERS:
            result[field] = max(result[field], live[field])
        result["cancelled"] = result["cancelled"] or live["cancelled"]
    return result


def cancel(operation_id):
    """Request cancellation; rows not yet reached stay failed. ApiError 404 for an unknown id,
    409 when the operation already ended."""
    if not bulk_progress.is_valid_operation_id(operation_id):
        raise ApiError(404, "Operation not found or expired")
    with db.connection() as conn:
        op = ops_repo.request_cancel(conn, operation_id)
    if op is None:
        raise ApiError(404, "Operation not found or expired")
    if op["status"] not in ops_repo.ACTIVE:
        raise ApiError(409, f"Operation already {op['status']}")
    bulk_progress.cancel_progress(operation_id)
    bulk_progress.set_status(operation_id, "cancelling")
    return operation_json(op)


def resume_stalled(stall_seconds):
    """Queue run_bulk_retry again for active operations whose heartbeat stopped."""
    from ..tasks import run_bulk_retry

    with db.connection() as conn:
        stalled = ops_repo.claim_stalled(conn, stall_seconds)
    for operation_id in stalled:
        log.warning("resuming stalled bulk retry %s", operation_id)
        run_bulk_retry(operation_id)
    return stalled


def record_delivery(operation_id, delivered):
    """A snapshot job queued by this operation reports whether it delivered."""
    if not bulk_progress.is_valid_operation_id(operation_id):
        return
    with db.connection() as conn:
        ops_repo.record_delivery(conn, operation_id, delivered)
    bulk_progress.increment_deliveries(operation_id, delivered=int(delivered),
                                       delivery_failed=int(not delivered))


def active_operations():
    with db.connection() as conn:
        return [operation_json(op) for op in ops_repo.list_active(conn)]


def recent_operations(limit=50):
    with db.connection() as conn:
        return [operation_json(op) for op in ops_repo.list_recent(conn, limit)]


def operation_json(op):
    """The public shape of an operation (progress endpoint, history, fragments)."""
    return {
        "operation_id": op["id"],
        "scope": op["scope"],
        "app_id": op["app_id"],
        "requested_by": op["requested_by"],
        "status": op["status"],
        "total": op["total"],
        "completed": op["completed"],
        "succeeded": op["succeeded"],
        "failed": op["failed"],
        "skipped": op["skipped"],
        "delivered": op["delivered"],
        "delivery_failed": op["delivery_failed"],
        "cancelled": op["cancel_requested"] or op["status"] == "cancelled",
        "created_at": op["created_at"].isoformat(),
        "finished_at": op["finished_at"].isoformat() if op["finished_at"] else None,
    }
