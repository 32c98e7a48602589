"""Reading bulk operations: live progress, history, one operation with its outcome.

The public shape (progress endpoint, history, pages) keeps the seed's fields and meanings:
`succeeded` is the number of links reset and queued (the console says "queued"), `completed`
= succeeded + failed + skipped, `status` is the reset phase (running, cancelling, completed,
cancelled, failed). What happened to the deliveries is in the fields added since:
`outcome` {delivered, failed_again, in_progress, gone}, `phase` (resetting → delivering →
settled) and `settled_at`.
"""
from datetime import datetime, timezone

from ... import db
from ...errors import ApiError
from ...repositories import bulk_operations as ops_repo
from . import bulk_progress, outcomes

FAILED_AGAIN_PAGE = 50


def _require_id(operation_id):
    if not bulk_progress.is_valid_operation_id(operation_id):
        raise ApiError(404, "Operation not found or expired")


def progress(operation_id):
    """Live progress of an operation: PostgreSQL's record, with the Redis hash's fresher
    counters while they live. ApiError 404 for an id that never existed (or is malformed)."""
    _require_id(operation_id)
    live = bulk_progress.get_progress(operation_id)
    with db.connection() as conn:
        op = ops_repo.get_operation(conn, operation_id)
    if op is None:
        raise ApiError(404, "Operation not found or expired")
    op = dict(op)
    if live is not None and op["settled_at"] is None:
        # Redis moves first (PostgreSQL commits per chunk, the outcome is recounted by the
        # sweeper); take the fresher counters.
        fields = bulk_progress.COUNTERS if op["status"] in ops_repo.ACTIVE else (
            "delivered", "delivery_failed", "gone")
        for field in fields:
            op[field] = max(op[field], live[field])
        op["cancel_requested"] = op["cancel_requested"] or live["cancelled"]
    return operation_json(op)


def operation_json(op):
    """The public shape of an operation (progress endpoint, history, fragments)."""
    # Settled means none is left in progress (an operation older than the attempt log is
    # settled as it stood).
    left = 0 if op["settled_at"] else outcomes.in_progress(op)
    active = op["status"] in ops_repo.ACTIVE
    return {
        "operation_id": op["id"],
        "kind": op["kind"],  # retry, or resync (deliver everything again)
        "scope": op["scope"],
        "app_id": op["app_id"],
        "filter": op["filter"],
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
        "paused": op["status"] == "paused",
        # Why it ended when it did not run its course (a failure, its app deleted), else None.
        "error": op["error"],
        "paused_at": op["paused_at"].isoformat() if op["paused_at"] else None,
        "phase": "resetting" if active else ("settled" if op["settled_at"] else "delivering"),
        "outcome": {"delivered": op["delivered"], "failed_again": op["delivery_failed"],
                    "in_progress": left, "gone": op["gone"]},
        "created_at": op["created_at"].isoformat(),
        "finished_at": op["finished_at"].isoformat() if op["finished_at"] else None,
        "settled_at": op["settled_at"].isoformat() if op["settled_at"] else None,
        # From the start until every delivery ended.
        "duration": _took(op["settled_at"] - op["created_at"]) if op["settled_at"] else None,
        # Until then, how long it has been going (History shows "3 min 5 s so far").
        "running_for": None if op["settled_at"] else _took(
            datetime.now(timezone.utc) - op["created_at"]),
    }


def _took(delta):
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def active_operations():
    with db.connection() as conn:
        return [operation_json(op) for op in ops_repo.list_active(conn)]


def running_for_scope(app_id=None):
    """The running operation of this scope (one app, or all apps when app_id is None; at most
    one runs per scope), else for an app the one running across all apps. None when none runs."""
    running = active_operations()
    for op in running:
        if op["app_id"] == app_id:
            return op
    if app_id is not None:
        for op in running:
            if op["app_id"] is None:
                return op
    return None


def recent_operations(limit=50):
    with db.connection() as conn:
        return [operation_json(op) for op in ops_repo.list_recent(conn, limit)]


def failed_again(operation_id, after=None, limit=FAILED_AGAIN_PAGE):
    """A page of the links this operation reset that failed again: ({rows}, next cursor)."""
    _require_id(operation_id)
    with db.connection() as conn:
        rows = ops_repo.failed_again_page(conn, operation_id, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["attempt_id"] if more else None)


def count_failed_again_still_failed(operation_id):
    """How many of the links that failed again in this operation are still failed (what "Retry
    the N that failed again" would retry)."""
    with db.connection() as conn:
        return ops_repo.count_failed_again(conn, operation_id)
