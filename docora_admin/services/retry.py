"""Retrying failed links: one at a time from a request, or in bulk through a Huey task.

A bulk retry is started by a request that only counts and records (start_bulk_retry), and worked
through by run_bulk_retry in chunks: each chunk resets still-failed targets and moves the
operation's counters and cursor in one statement (its own transaction), then queues the snapshot
jobs. A worker killed between chunks leaves a resumable operation; a killed one mid-chunk leaves
nothing half-written, because the chunk's transaction is all or nothing.
"""
import logging
import threading
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

    Safe to run twice at once or after a crash: each chunk is one statement that locks the
    operation, starts from the cursor it left and resets only rows still failed. While
    PostgreSQL works on one chunk, a helper thread queues the jobs of the previous one (the SQL
    and the Redis push each take about half of a chunk's time).

    Chunks commit asynchronously (8% faster: no wait for each chunk's WAL flush). Should the
    database server crash, it may come back without the last chunks: their links are failed
    again, the operation's cursor and counters are back before them, and the resume redoes
    them. A job already queued for such a link finds it failed and does nothing (its claim
    needs pending_snapshot), and no job can have claimed a link whose chunk was lost, because
    its own synchronous commit would have flushed that chunk first."""
    _sync_progress_from_database(operation_id)
    # An optional pause between chunks throttles the load a huge retry puts on the apps.
    delay = runtime.settings().bulk_chunk_delay_ms / 1000
    cancel_flagged = threading.Event()  # the Redis hash said cancelled (see _queue_chunk)
    with db.autocommit_connection(synchronous_commit=False) as conn, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-enqueue") as pusher:
        chunks = _Chunks(conn, operation_id)
        pending = None
        while True:
            rows = chunks.reset_next(recheck=cancel_flagged.is_set())
            if pending is not None:
                pending.result()  # at most one chunk in flight; re-raise a failed push
                pending = None
            if rows is None:
                return
            pending = pusher.submit(_queue_chunk, operation_id, rows, cancel_flagged)
            if delay:
                time.sleep(delay)


def _run_one_chunk(operation_id):
    """One chunk, start to end (reset, then queue). Returns the number of links queued, or
    None when the operation has ended."""
    with db.autocommit_connection() as conn:
        rows = _Chunks(conn, operation_id).reset_next()
    if rows is None:
        return None
    _queue_chunk(operation_id, rows)
    return len(rows)


def _queue_chunk(operation_id, rows, cancel_flagged=None):
    # The rows are committed as pending_snapshot and counted. If this process dies before the
    # push, the scheduler's pass over pending_snapshot links queues them instead.
    job_queue.enqueue_snapshots(rows, operation_id)
    cancelled = bulk_progress.increment_progress(operation_id, succeeded=len(rows))
    if cancelled and cancel_flagged is not None:
        cancel_flagged.set()


class _Chunks:
    """The chunks of one operation, reset one statement each on an autocommit connection.

    The operation row is read (and locked) only to start, and again when the chunk statement
    refuses to go on: cancel requested, operation over, or its cursor moved by another runner.
    """

    def __init__(self, conn, operation_id):
        self.conn = conn
        self.operation_id = operation_id
        self.op = None  # as last read; None: read it before the next chunk
        self.after = None  # the cursor the next chunk starts after

    def reset_next(self, recheck=False):
        """Reset the next chunk; return its reset links, or None once the operation has ended.
        `recheck` re-reads the operation first (the Redis hash said cancelled)."""
        if recheck:
            self.op = None
        while True:
            if self.op is None and not self._settle():
                return None
            outcome, rows, self.after = retry_links.reset_chunk(self.conn, self.op, self.after)
            if outcome == "chunk":
                return rows
            if outcome == "done":
                self._settle(exhausted=True)
                return None
            self.op = None  # stopped: find out why, under the lock

    def _settle(self, exhausted=False):
        """Read the operation under its lock. End it when cancel was asked (cancelled) or no
        target is left (completed); return True when chunks should go on."""
        with self.conn.transaction():
            op = ops_repo.get_operation(self.conn, self.operation_id, for_update=True)
            if op is None or op["status"] not in ops_repo.ACTIVE:
                return False
            if op["cancel_requested"] or bulk_progress.is_cancelled(self.operation_id):
                finished = ops_repo.finish(self.conn, self.operation_id, "cancelled")
            elif exhausted:
                finished = ops_repo.finish(self.conn, self.operation_id, "completed")
            else:
                self.op = op
                self.after = ((op["cursor_updated_at"], op["cursor_link_id"])
                              if op["cursor_updated_at"] else retry_links.CURSOR_START)
                return True
        _publish_final(finished)
        return False


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
