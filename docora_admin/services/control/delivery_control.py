"""Holding and releasing an app's deliveries: an operator's pause, the circuit breaker, and the
app's own "wait" (429/503 with Retry-After); and the app's limits.

While an app is held, a snapshot job for it finds nothing to claim and ends (admit): its link
stays pending_snapshot in PostgreSQL, no attempt is made or counted, and nothing is lost across a
restart. Releasing the app (resume, the circuit closing, the deferral ending) makes its due links
due for a new generation and queues them (release). The sweeper leaves a held app's links alone
(repositories/snapshot_links.py).

The circuit: CIRCUIT_FAILURE_THRESHOLD failed attempts in a row, the app answering badly or not at
all, open it. While open, one probe attempt goes out per probe interval (CIRCUIT_PROBE_SECONDS,
doubling after each failed probe up to CIRCUIT_PROBE_MAX_SECONDS); the first delivered attempt
closes it. A retry of 10,000 links to an app that is down so costs about the threshold in
attempts (plus those already under way), not one per link.
"""
import email.utils
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ... import db, runtime
from ...errors import ApiError
from ...repositories import apps as apps_repo
from ...repositories import delivery_control as control_repo
from ..team import audit
from ..alerts import changes as alert_changes
from ..jobs import job_queue
from ..retries import outcomes
from .app_limits import AppLimiter

log = logging.getLogger(__name__)

RELEASE_BATCH = 5000


@dataclass(frozen=True)
class Admission:
    """A job may go on: its app is not held (or this job is the circuit's probe)."""
    probe: bool
    rate_per_second: float
    max_concurrency: int

    def limiter(self, app_id):
        settings = runtime.settings()
        return AppLimiter(app_id, self.rate_per_second, self.max_concurrency,
                          settings.delivery_timeout_s + 5)


def admit(conn, app_id):
    """In the claim's transaction: an Admission, or None when the app's deliveries are held (the
    job ends without claiming; its link waits for the app's release). Takes the circuit's probe
    slot when it is due; the caller rolls back if it then claims nothing."""
    settings = runtime.settings()
    row = control_repo.get(conn, app_id)
    if row is None:
        return Admission(False, settings.app_rate_per_second, settings.app_max_concurrency)
    if row["paused_at"] is not None or row["deferred"]:
        return None
    if row["circuit_opened_at"] is None:
        return admission(row)
    if not control_repo.take_probe(conn, app_id, settings.circuit_probe_seconds,
                                   settings.circuit_probe_max_seconds):
        return None
    return replace(admission(row), probe=True)


def admission(row):
    """The Admission of an app that is not held, from its rate_per_second and max_concurrency
    overrides (None: the defaults)."""
    settings = runtime.settings()
    return Admission(False, _or_default(row["rate_per_second"], settings.app_rate_per_second),
                     _or_default(row["max_concurrency"], settings.app_max_concurrency))


def _or_default(value, default):
    return default if value is None else value


def record_failed(conn, app_id, error, was_probe=False):
    """In the transaction that marks an attempt failed because of the app: one more failure in
    its streak; the circuit opens at the threshold. `was_probe`: the attempt was the open
    circuit's probe (its failure pushes the next probe out)."""
    settings = runtime.settings()
    row = control_repo.record_failed(conn, app_id, error, settings.circuit_failure_threshold,
                                     settings.circuit_probe_seconds,
                                     settings.circuit_probe_max_seconds, was_probe)
    if row is not None and row["opened"]:
        alert_changes.app_circuit_opened(conn, app_id, row)
        log.warning("circuit opened for %s after %d failed attempts in a row: %s", app_id,
                    row["consecutive_failures"], error)


def record_deferral(conn, app_id, seconds):
    """The app answered 429/503 with Retry-After: hold its deliveries for `seconds`."""
    control_repo.defer(conn, app_id, seconds)
    log.info("%s asked to wait %d s; its deliveries are held until then", app_id, seconds)


def retry_after_seconds(value, now=None):
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped at
    RETRY_AFTER_MAX_SECONDS and at least 1; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = int((when - (now or datetime.now(timezone.utc))).total_seconds() + 0.999)
    return max(1, min(seconds, runtime.settings().retry_after_max_seconds))


def release(app_id):
    """Queue every due pending link of an app that is no longer held (in batches, each queued
    after its commit; a crash between the two is healed by the sweeper). Returns how many."""
    with db.connection() as conn:
        # Links due by now; each batch makes its links due later than this, so none is taken
        # twice (they would be, forever, if each batch asked for "due now").
        due_before = control_repo.database_now(conn)
    total = job_queue.queue_in_batches(
        lambda conn: control_repo.release_links(conn, app_id, due_before, RELEASE_BATCH),
        RELEASE_BATCH)
    if total:
        log.info("%s released: %d delivery job(s) queued", app_id, total)
    outcomes.refresh_held()
    return total


def tick():
    """The watchdog's step: release apps whose Retry-After has passed, queue due probes."""
    with db.connection() as conn:
        ended = control_repo.end_expired_deferrals(conn)
    for app_id in ended:
        release(app_id)
    with db.connection() as conn:
        probes = control_repo.due_probe_links(conn)
    for row in probes:
        job_queue.push_snapshot_jobs([(row["app_id"], row["repository_id"],
                                       row["retry_operation_id"], row["job_generation"])],
                                     row["stamp"])
    return {"released": len(ended), "probes": len(probes)}


# Operator actions (views call these).

def _existing_app(conn, app_id):
    if not isinstance(app_id, str) or not 0 < len(app_id) <= 50 or apps_repo.get_app(
            conn, app_id) is None:
        raise ApiError(404, "App not found")


def pause_app(app_id, paused_by):
    """Hold an app's deliveries until resumed. Returns its delivery state."""
    with db.connection() as conn:
        _existing_app(conn, app_id)
        row = control_repo.pause(conn, app_id, paused_by)
        audit.record(conn, "app.pause", target=app_id)
    log.info("%s paused by %s", app_id, paused_by)
    return describe(row)


def resume_app(app_id):
    """End an operator's pause and queue the app's held links (unless its circuit or a deferral
    still holds it). Returns (delivery state, links queued)."""
    return _lift(app_id, control_repo.resume, "app.resume")


def close_circuit(app_id):
    """An operator closes the app's circuit (and forgets a Retry-After): its held links are
    queued unless it is paused. Returns (delivery state, links queued)."""
    return _lift(app_id, control_repo.close_circuit, "app.circuit_close")


def _lift(app_id, change, action):
    runtime.redis_client().ping()  # fail before changing anything when the queue is down
    with db.connection() as conn:
        _existing_app(conn, app_id)
        before = change(conn, app_id)
        if action == "app.circuit_close" and before and before["circuit_opened_at"]:
            alert_changes.app_circuit_closed(conn, app_id, before["circuit_opened_at"],
                                             f"closed by {audit.current_actor() or 'an operator'}")
        audit.record(conn, action, target=app_id)
    released = release(app_id)
    with db.connection() as conn:
        state = describe(control_repo.get(conn, app_id))
    return state, released


def set_limits(app_id, rate_per_second, max_concurrency):
    """Per-app overrides (None: back to the setting). Returns the delivery state."""
    with db.connection() as conn:
        _existing_app(conn, app_id)
        row = control_repo.set_limits(conn, app_id, rate_per_second, max_concurrency)
        audit.record(conn, "app.limits_set", target=app_id,
                     details={"rate_per_second": rate_per_second,
                              "max_concurrency": max_concurrency})
    return describe(row)


def state_of(app_id):
    """The app's delivery state (describe), with how many links wait for its release."""
    with db.connection() as conn:
        _existing_app(conn, app_id)
        row = control_repo.get(conn, app_id)
        state = describe(row)
        state["held_links"] = (control_repo.count_held_links(conn, app_id)
                               if state["held"] else 0)
        # "Delivering normally" only when the last attempt was delivered: a circuit closed by
        # hand clears the streak while the app may still be down.
        last = None
        if not state["held"] and row is not None and row["last_failure_at"] is not None:
            last = control_repo.last_attempt(conn, app_id)
        state["last_attempt_failed"] = last is not None and last["outcome"] == "failed"
        state["last_attempt_at"] = last["finished_at"] if last else None
    return state


def states_of(app_ids):
    """{app_id: delivery state} for a page of apps (one query)."""
    with db.connection() as conn:
        rows = control_repo.for_apps(conn, app_ids)
    return {app_id: describe(rows.get(app_id)) for app_id in app_ids}


def held_apps():
    """Every app held now, described, for the overview."""
    with db.connection() as conn:
        rows = control_repo.held_apps(conn)
    return [{**describe(row), "app_id": row["app_id"], "app_name": row["app_name"]}
            for row in rows]


def describe(row):
    """What the console and the JSON say about an app's deliveries (row None: never held)."""
    settings = runtime.settings()
    row = row or {}
    opened = row.get("circuit_opened_at")
    deferred_until = row.get("deferred_until") if row.get("deferred") else None
    paused = row.get("paused_at") is not None
    if paused:
        held = "paused"
    elif opened is not None:
        held = "circuit_open"
    elif deferred_until is not None:
        held = "deferred"
    else:
        held = None
    rate = row.get("rate_per_second")
    concurrency = row.get("max_concurrency")
    return {
        "held": held is not None, "held_reason": held,
        "paused": paused, "paused_at": row.get("paused_at"), "paused_by": row.get("paused_by"),
        "circuit": "open" if opened is not None else "closed",
        "circuit_opened_at": opened,
        "next_probe_at": row.get("probe_at") if opened is not None else None,
        "consecutive_failures": row.get("consecutive_failures", 0),
        "failure_threshold": settings.circuit_failure_threshold,
        "last_error": row.get("last_error"), "last_failure_at": row.get("last_failure_at"),
        "deferred_until": deferred_until,
        "rate_per_second": settings.app_rate_per_second if rate is None else rate,
        "max_concurrency": (settings.app_max_concurrency if concurrency is None
                            else concurrency),
        "limits_overridden": rate is not None or concurrency is not None,
    }

