"""Recording alerts: one row per state change, in the transaction that makes the change.

Each function takes the caller's connection (the circuit's, the operation's), so the alert
commits with the change or not at all; a process that dies after the commit leaves the row
for the sender (the watchdog queues it, services/alerts/sending.tick). The one exception is a
circuit closed by a delivered attempt, a single autocommit statement: closed_by_delivery
follows its commit, and heal_lost_closes records what a crash in between lost. The dedupe key names the
change, so two workers that see the same transition record one alert:

    app_circuit_open / app_circuit_closed   app:<app_id>:<the episode's circuit_opened_at>
    repository_circuit_open                 repository:<repository_id>:<circuit_episode>
    repository_circuit_closed               repository:<repository_id>:<its circuit_opened_at>:closed
    operation_failures                      operation:<operation_id>
    failed_rise                             failed_links:<the rule's episode>
    test                                    test:<random id>

Nothing here sends: see sending.py. Recorded with no delivery when no channel is configured,
so the page still shows what happened.
"""
import logging
import secrets

from ... import db, runtime
from ...repositories import alerts as alerts_repo
from ...repositories import names

log = logging.getLogger(__name__)

FAILED_RISE_RULE = "failed_rise"


def _record(conn, kind, subject, key, state, facts):
    settings = runtime.settings().alerts
    # A test alert is never held back by a cool-down: its subject is its own.
    cooldown = 0 if kind == "test" else settings.cooldown_minutes * 60
    row = alerts_repo.record(conn, kind, subject, key, state, facts, settings.channels,
                             cooldown)
    if row is not None:
        log.info("alert %s recorded for %s (%s)", kind, subject, state)
    return row


def _stamp(moment):
    # Microseconds: the episode's opening time as it is stored, the same in every process.
    return f"{moment.timestamp():.6f}"


def app_circuit_opened(conn, app_id, control_row):
    """The app's circuit opened (control_row: its app_delivery_control row after)."""
    facts = {"app_id": app_id, "app_name": names.app_names(conn, [app_id]).get(app_id),
             "consecutive_failures": control_row["consecutive_failures"],
             "error": control_row["last_error"],
             "opened_at": control_row["circuit_opened_at"].isoformat()}
    return _record(conn, "app_circuit_open", f"app:{app_id}",
                   f"app:{app_id}:{_stamp(control_row['circuit_opened_at'])}:open", "open",
                   facts)


def app_circuit_closed(conn, app_id, opened_at, by):
    """The app's circuit that opened at `opened_at` closed; `by` says how ("a delivery went
    through", or the operator's name)."""
    facts = {"app_id": app_id, "app_name": names.app_names(conn, [app_id]).get(app_id),
             "opened_at": opened_at.isoformat(), "closed_by": by}
    return _record(conn, "app_circuit_closed", f"app:{app_id}",
                   f"app:{app_id}:{_stamp(opened_at)}:closed", "closed", facts)


def closed_by_delivery(app_id, opened_at):
    """Right after the commit of the delivered attempt that closed the app's circuit (one
    autocommit statement, which has no room for the alert): its alert, in a transaction of its
    own. Should PostgreSQL fail now, or the process die, heal_lost_closes records it on the
    watchdog's next tick."""
    try:
        with db.connection() as conn:
            app_circuit_closed(conn, app_id, opened_at, "a delivery went through")
    except db.DatabaseUnavailable as exc:
        log.warning("alert of %s's circuit closing not recorded (%s); the watchdog will",
                    app_id, exc.__class__.__name__)


def repository_circuit_opened(conn, repository_id, circuit_row, error):
    """The repository's git circuit opened (circuit_row: its state after)."""
    facts = {"repository_id": repository_id,
             "repository": names.repository_names(conn, [repository_id]).get(repository_id),
             "consecutive_failures": circuit_row["consecutive_failures"],
             "episode": circuit_row["circuit_episode"], "error": error,
             "open_until": circuit_row["circuit_open_until"].isoformat()}
    return _record(conn, "repository_circuit_open", f"repository:{repository_id}",
                   f"repository:{repository_id}:{circuit_row['circuit_episode']}", "open",
                   facts)


def repository_circuit_closed(conn, repository_id, before, by):
    """The repository's git circuit closed (before: its state as it was, open); `by` says how
    ("a git fetch went through", or the operator's name)."""
    facts = {"repository_id": repository_id,
             "repository": names.repository_names(conn, [repository_id]).get(repository_id),
             "consecutive_failures": before["consecutive_failures"],
             "opened_at": before["circuit_opened_at"].isoformat(), "closed_by": by}
    return _record(conn, "repository_circuit_closed", f"repository:{repository_id}",
                   f"repository:{repository_id}:{_stamp(before['circuit_opened_at'])}:closed",
                   "closed", facts)


def operation_settled(conn, op):
    """A bulk operation settled (op: its row): an alert when links failed (reset failures or
    failed again)."""
    failures = op["failed"] + op["delivery_failed"]
    if not failures:
        return None
    facts = {"operation_id": op["id"], "kind": op["kind"], "scope": op["scope"],
             "app_id": op["app_id"], "total": op["total"], "delivered": op["delivered"],
             "failed_again": op["delivery_failed"], "reset_failed": op["failed"],
             "status": op["status"], "requested_by": op["requested_by"]}
    return _record(conn, "operation_failures", f"operation:{op['id']}",
                   f"operation:{op['id']}", "ended_with_failures", facts)


def check_failed_rise(conn):
    """The periodic rule: more than ALERT_FAILED_RISE_COUNT links entered `failed` (and are
    still there) in the last ALERT_FAILED_RISE_MINUTES, on PostgreSQL's clock. One alert when
    the rule starts firing; armed again once the count is back to the limit or below.
    ALERT_FAILED_RISE_COUNT 0 turns the rule off. Returns the alert row or None."""
    settings = runtime.settings().alerts
    if settings.failed_rise_count <= 0:
        return None
    # Every tick asks only whether the limit is passed (a bounded count); the whole count is
    # read once, for the alert's message.
    risen = alerts_repo.count_entered_failed_since(conn, settings.failed_rise_minutes,
                                                   settings.failed_rise_count + 1)
    if risen <= settings.failed_rise_count:
        alerts_repo.stop_firing(conn, FAILED_RISE_RULE)
        return None
    episode = alerts_repo.start_firing(conn, FAILED_RISE_RULE)
    if episode is None:
        return None
    risen = alerts_repo.count_entered_failed_since(conn, settings.failed_rise_minutes)
    facts = {"entered_failed": risen, "limit": settings.failed_rise_count,
             "minutes": settings.failed_rise_minutes}
    return _record(conn, "failed_rise", "failed_links", f"failed_links:{episode}", "rising",
                   facts)


def heal_lost_closes(conn):
    """A circuit whose close alert was lost (the process died between the delivery that closed
    it and its alert): record it now. Returns how many."""
    found = alerts_repo.circuits_closed_unalerted(conn)
    for row in found:
        app_circuit_closed(conn, row["app_id"], row["opened_at"], "found closed")
    return len(found)


def test_alert(conn, requested_by):
    """An operator's test alert (sent at once on every configured channel)."""
    alert_id = secrets.token_hex(8)
    return _record(conn, "test", f"test:{alert_id}", f"test:{alert_id}", "test",
                   {"requested_by": requested_by})
