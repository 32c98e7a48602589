"""Reading bulk operations: live progress, history, one operation with its outcome.

The public shape (progress endpoint, history, pages) keeps the seed's fields and meanings:
`succeeded` is the number of links reset and queued (the console says "queued"), `completed`
= succeeded + failed + skipped, `status` is the reset phase (running, cancelling, completed,
cancelled, failed). What happened to the deliveries is in the fields added since:
`outcome` {delivered, failed_again, in_progress, held, gone} (they add up to `succeeded`),
`held` (why and where links wait for a release), `phase` (resetting → delivering → settled),
`settled_at`, and `state`: the one word for where the operation is, that every screen shows.
"""
from datetime import datetime, timezone

from ... import db, runtime
from ...errors import ApiError
from ...repositories import bulk_operations as ops_repo
from . import bulk_progress, outcomes

FAILED_AGAIN_PAGE = 50

# Where an operation is, one word per moment, and what every screen calls it. A cancelled or
# stopped operation stays that (its deliveries may still be going: the outcome says how many).
STATE_LABELS = {
    "running": "Running", "paused": "Paused", "cancelling": "Cancelling",
    "failed": "Stopped on an error", "cancelled": "Cancelled",
    "delivering": "Waiting for deliveries", "held": "Held",
    "with_failures": "Finished with failures", "delivered": "All delivered",
    "nothing_queued": "Nothing queued",
}


def _require_id(operation_id):
    if not bulk_progress.is_valid_operation_id(operation_id):
        raise ApiError(404, "Operation not found or expired")


def progress(operation_id):
    """Live progress of an operation. While its Redis hash lives, from the hash alone (one
    round trip: the copy of its row, the fresher live counters, the reset's beat and Redis's
    clock); once it has expired, from PostgreSQL's record. ApiError 404 for an id that never
    existed (or is malformed)."""
    _require_id(operation_id)
    live = bulk_progress.read_live(operation_id)
    if live is not None:
        values, now = live
        return operation_json(_merged(values), now=now)
    with db.connection() as conn:
        op = ops_repo.get_operation(conn, operation_id)
        if op is None:
            raise ApiError(404, "Operation not found or expired")
        op = dict(op)
        if op["settled_at"] is None and (op["held"] or {}).get("links"):
            # Something held links at the last recount: look again (the hash, gone now, is
            # told of a release when it happens: outcomes.refresh_held).
            op["held"] = outcomes.held(conn, operation_id)
    return operation_json(op)


def _merged(values):
    """The operation from its live hash: the row's copy, with the counters Redis moved since
    (PostgreSQL commits per chunk and the outcome is recounted by the sweeper) and the reset's
    heartbeat by Redis's clock."""
    op = values["record"]
    if op["settled_at"] is None:
        fields = bulk_progress.COUNTERS if op["status"] in ops_repo.ACTIVE else (
            bulk_progress.GROWING)
        for field in fields:
            op[field] = max(op[field], int(values.get(field, 0)))
        op["cancel_requested"] = op["cancel_requested"] or values.get("cancelled") == "true"
    if "beat" in values:
        op["heartbeat_at"] = datetime.fromtimestamp(float(values["beat"]), timezone.utc)
    return op


def operation_json(op, now=None):
    """The public shape of an operation (progress endpoint, history, fragments). `now` is the
    clock its heartbeat is compared with (Redis's for a live hash); else the row's
    heartbeat_age (PostgreSQL's) counts."""
    # Settled means none is left in progress (an operation older than the attempt log is
    # settled as it stood).
    left = 0 if op["settled_at"] else outcomes.in_progress(op)
    active = op["status"] in ops_repo.ACTIVE
    held = _held(op, left)
    state = _state(op, active, left, held["links"])
    if now is not None:
        beat = op.get("heartbeat_at")
        op = {**op, "heartbeat_age": (now - beat).total_seconds() if beat else None}
    now = now or datetime.now(timezone.utc)
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
        "state": state,
        "state_label": STATE_LABELS[state],
        "outcome": {"delivered": op["delivered"], "failed_again": op["delivery_failed"],
                    "in_progress": left - held["links"], "held": held["links"],
                    "gone": op["gone"]},
        "held": held,
        "stall": _stall(op),
        "created_at": op["created_at"].isoformat(),
        "finished_at": op["finished_at"].isoformat() if op["finished_at"] else None,
        "settled_at": op["settled_at"].isoformat() if op["settled_at"] else None,
        # From the start until every delivery ended.
        "duration": _took(op["settled_at"] - op["created_at"]) if op["settled_at"] else None,
        # Until then, how long it has been going (History shows "3 min 5 s so far").
        "running_for": None if op["settled_at"] else _took(now - op["created_at"]),
    }


def _stall(op):
    """Whether the reset has stopped moving (no heartbeat for BULK_STALL_SECONDS, by the
    database's clock: its worker died and none has resumed it yet), since when, and the last
    resume of an earlier stall."""
    age = op.get("heartbeat_age")
    stalled = (op["status"] in ("running", "cancelling") and age is not None
               and float(age) > runtime.settings().bulk_stall_seconds)
    return {"stalled": stalled,
            "since": op["heartbeat_at"].isoformat() if stalled else None,
            "seconds": int(age) if stalled else None,
            "stalled_at": _iso(op.get("stalled_at")), "resumed_at": _iso(op.get("resumed_at")),
            "resumes": op.get("resumes") or 0}


def _iso(moment):
    return moment.isoformat() if moment else None


def _held(op, left):
    """The operation's held summary, bounded by what is left in progress (the summary is from
    the last recount, the counters move live)."""
    summary = dict(op.get("held") or {}) if left else {}
    summary["links"] = min(summary.get("links", 0), left)
    summary.setdefault("by_reason", dict.fromkeys(ops_repo.HELD_REASONS, 0))
    summary.setdefault("apps", [])
    summary.setdefault("apps_count", 0)
    return summary


def _state(op, active, left, held_links):
    if active or op["status"] in ("failed", "cancelled"):
        return op["status"]
    if left or not op["settled_at"]:
        # Ended by the live counters is not settled until the recount of the rows agrees
        # (outcomes.settle): until then the phase, and so the state, is still delivering.
        return "held" if left and held_links >= left else "delivering"
    if op["delivery_failed"] or op["gone"]:
        return "with_failures"
    return "delivered" if op["succeeded"] else "nothing_queued"


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
