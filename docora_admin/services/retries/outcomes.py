"""Where the links a bulk operation reset ended: delivered, failed again, still in progress or
held (waiting for a release: their app paused, its circuit open, the app asked to wait, their
repository's circuit open), and when the operation is settled (none left in progress).

The truth is the attempt log: each episode a bulk operation started ends in exactly one row with
link_status synced or failed (written in the same statement as the link's change), so counting
those rows never double counts, whatever was retried, requeued or redone. The operation's row
holds the last count (rewritten by the sweeper's pass, never per job: many workers reporting at
once do not queue on one row); the Redis hash carries live increments in between.

A link the operation reset that can no longer end (deleted meanwhile) would keep it unsettled for
ever: an operation whose count has not moved for STUCK_AFTER_S is checked against the links
themselves, and the missing ones are counted as gone.
"""
from datetime import datetime, timezone

from ... import db
from ...repositories import bulk_operations as ops_repo
from ..alerts import changes as alert_changes
from . import bulk_progress

STUCK_AFTER_S = 120


HELD_APPS_KEPT = 20


def in_progress(op):
    """Links reset by the operation whose episode has not ended yet (held ones included)."""
    return max(0, op["succeeded"] - op["delivered"] - op["delivery_failed"] - op["gone"])


def held(conn, operation_id):
    """The held part of an operation's links: {links, by_reason, apps (the HELD_APPS_KEPT
    with most links), apps_count}; links 0 when none is held."""
    rows = ops_repo.held_links(conn, operation_id)
    by_reason = dict.fromkeys(ops_repo.HELD_REASONS, 0)
    for row in rows:
        by_reason[row["reason"]] += row["links"]
    apps = [{"app_id": row["app_id"], "app_name": row["app_name"], "reason": row["reason"],
             "links": row["links"],
             "until": row["until"].isoformat() if row["until"] else None}
            for row in rows[:HELD_APPS_KEPT]]
    return {"links": sum(by_reason.values()), "by_reason": by_reason, "apps": apps,
            "apps_count": len({row["app_id"] for row in rows})}


def settle_all():
    """Bring the outcome of every unsettled operation up to date; return how many settled."""
    with db.connection() as conn:
        unsettled = ops_repo.list_unsettled(conn)
    return sum(1 for op in unsettled if settle(op)["settled_at"] is not None)


def refresh_held():
    """Recount the unsettled operations that held links at their last recount: called when a
    release (a resume, a circuit closed, a wait over) has just queued links, so that a poll,
    which reads the live hash only, shows them in progress again at once. Returns how many."""
    with db.connection() as conn:
        unsettled = ops_repo.list_unsettled(conn)
    held_some = [op for op in unsettled if (op["held"] or {}).get("links")]
    for op in held_some:
        settle(op)
    return len(held_some)


def settle(op):
    """Recount one operation's outcome from the attempt log, mark it settled when its reset
    phase is over and nothing is left in progress, and refresh the live hash. Returns the row."""
    with db.connection() as conn:
        ended = ops_repo.ended_episodes(conn, op["id"])
        gone = op["gone"]
        left = op["succeeded"] - ended["delivered"] - ended["failed_again"] - gone
        reset_phase_over = op["status"] not in ops_repo.ACTIVE
        if reset_phase_over and left > 0 and _stuck(op, ended):
            still = ops_repo.links_in_progress(conn, op["id"])
            gone += max(0, left - still)
            left = still
        settle_now = reset_phase_over and left <= 0
        held_now = None if settle_now or left <= 0 else held(conn, op["id"])
        row = ops_repo.save_outcome(conn, op["id"], ended["delivered"], ended["failed_again"],
                                    gone, settle=settle_now, held=held_now)
        if settle_now:
            alert_changes.operation_settled(conn, row)
    bulk_progress.write_outcome(row)
    return row


def _stuck(op, ended):
    unchanged = (ended["delivered"], ended["failed_again"]) == (op["delivered"],
                                                                op["delivery_failed"])
    since = op["outcome_changed_at"] or op["finished_at"] or op["created_at"]
    age = (datetime.now(timezone.utc) - since).total_seconds()
    return unchanged and age >= STUCK_AFTER_S
