"""The audit trail: who did what, when, from where, to what.

Record an event with `record(conn, action, target=…, details={…})` on the connection of the
transaction that makes the change, so the event and the change commit (or roll back) together.
Inside a web request the actor (the logged-in username) and the source address are filled in by
the web layer (auth.init_app installs the provider); the CLI and workers pass `actor=` (e.g.
"cli:alice", "system").

Action names are `<area>.<verb>`, lower case:
  login.success, login.failure (details.username: the name tried), login.lockout, logout,
  session.expire (the absolute lifetime ran out), session.end (an admin ended one session),
  session.end_all (an admin ended all of an account's sessions),
  retry.one, retry.now, retry.bulk_start (details: scope, app_id, filter, total),
  retry.bulk_abort (a start undone because its task could not be queued),
  resync.one, resync.bulk_start, resync.bulk_abort (re-deliver a link, an app),
  operation.cancel, operation.pause, operation.resume (details: scope, app_id, kind),
  app.pause, app.resume, app.circuit_close, app.limits_set (delivery control of an app),
  repository.circuit_open (system: git failed REPOSITORY_FAILURE_THRESHOLD times in a row),
  repository.circuit_close (system: a fetch went through; or an operator),
  account.create, account.role_change, account.password_change, account.disable,
  account.enable, account.unlock (an admin lifted a failed-login lock; details.failures),
  account.environment_sync (start-up brought ADMIN_USERNAME in step),
  audit.prune (details.deleted),
  alert.test (an operator sent a test alert; details: alert_id, channels),
  access.denied (a logged-in account refused by its role: details method, needs, role),
  link.dismiss, link.undismiss (one link, target app_id/repository_id, or every link of a
  cause, target cause:<cause>; details: reason, cause, links, app_id).
New delivery actions follow the same pattern.
The page and API filter by a whole name or an area ('retry' matches every retry.*).
"""
import logging
import re

from ... import db, runtime
from ...errors import ApiError
from ...input_values import parse_time
from ...repositories import audit_events

log = logging.getLogger(__name__)

# The actions the console records today (the filter offers them; others are accepted too).
KNOWN_ACTIONS = (
    "login", "login.success", "login.failure", "login.lockout", "logout",
    "session", "session.expire", "session.end", "session.end_all",
    "retry", "retry.one", "retry.now", "retry.bulk_start", "retry.bulk_abort",
    "resync", "resync.one", "resync.bulk_start", "resync.bulk_abort",
    "operation", "operation.cancel", "operation.pause", "operation.resume",
    "app", "app.onboard", "app.delete", "app.pause", "app.resume", "app.circuit_close",
    "app.limits_set",
    "repository", "repository.circuit_open", "repository.circuit_close",
    "account", "account.create", "account.role_change", "account.password_change",
    "account.disable", "account.enable", "account.unlock", "account.environment_sync",
    "audit.prune",
    "alert", "alert.test",
    "access.denied",
    "link", "link.dismiss", "link.undismiss")
ACTION_RE = re.compile(r"[a-z_]+(\.[a-z_]+)*")
PAGE_SIZE = 50


def _no_request_context():
    return None, None


# Returns (actor, source_address) for the current request; the web layer replaces it.
_context_provider = _no_request_context


def set_context_provider(provider):
    """Install the function that tells `record` who is acting and from where (the web layer's
    current user and remote address)."""
    global _context_provider
    _context_provider = provider


def current_actor():
    """The logged-in username inside a web request (None elsewhere)."""
    return _context_provider()[0]


def record(conn, action, target=None, details=None, actor=None, source_address=None):
    """Append one event in the caller's transaction. `actor` and `source_address` default to the
    current request's; `target` is what was acted on (a link "app_id/repository_id", an
    operation id, an account's username); `details` a JSON-able dict."""
    if not ACTION_RE.fullmatch(action):
        raise ValueError(f"audit action {action!r} must look like 'area.verb'")
    if actor is None or source_address is None:
        request_actor, request_address = _context_provider()
        actor = actor if actor is not None else request_actor
        source_address = source_address if source_address is not None else request_address
    return audit_events.insert(conn, action=action, actor=actor,
                               source_address=source_address, target=target,
                               details=details or {})


def record_alone(action, target=None, details=None, actor=None, source_address=None):
    """Record an event that goes with no database change of its own (a login, a logout), in its
    own transaction."""
    with db.connection() as conn:
        return record(conn, action, target=target, details=details, actor=actor,
                      source_address=source_address)


def events_page(actor=None, action=None, since=None, until=None, before_id=None,
                limit=PAGE_SIZE):
    """A page of events, newest first: (rows, cursor of the next page or None)."""
    with db.connection() as conn:
        rows = audit_events.page(conn, actor=actor, action=action, since=since, until=until,
                                 before_id=before_id, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more else None)


def prune():
    """Delete events older than the retention `migrate` stored (AUDIT_RETENTION_DAYS), in
    batches, and record how many went. Returns the count."""
    days = runtime.settings().audit_retention_days
    deleted = 0
    while True:
        with db.connection() as conn:
            batch = audit_events.prune(conn)
            deleted += batch
            if batch == 0:
                if deleted:
                    record(conn, "audit.prune", details={"deleted": deleted,
                                                          "older_than_days": days},
                           actor="system")
                break
    if deleted:
        log.info("audit trail: pruned %d event(s) older than %d days", deleted, days)
    return deleted


def verify():
    """(events checked, None) when the hash chain holds, else (events, (id, what is wrong))
    for the first event that breaks it."""
    with db.connection() as conn:
        return audit_events.count(conn), audit_events.first_broken_link(conn)


def event_json(row):
    """The public shape of an event (GET /admin/api/audit)."""
    return {"id": row["id"], "occurred_at": row["occurred_at"].isoformat(),
            "actor": row["actor"], "source_address": row["source_address"],
            "action": row["action"], "target": row["target"], "details": row["details"]}


def parse_filter(args):
    """The audit page's and API's query (actor, action, since, until, before) as keyword
    arguments for events_page. ApiError 400 naming a bad field."""

    actor = (args.get("actor") or "").strip() or None
    if actor is not None and (len(actor) > 255 or not actor.isprintable()):
        raise ApiError(400, "actor must be a username of at most 255 characters")
    action = (args.get("action") or "").strip() or None
    if action is not None and (len(action) > 64 or not ACTION_RE.fullmatch(action)):
        raise ApiError(400, "action must be an action name like retry.one, or an area like "
                            "retry")
    since = parse_time(args.get("since"), "since")
    until = parse_time(args.get("until"), "until")
    if since and until and since >= until:
        raise ApiError(400, "since must be before until")
    before = args.get("before") or None
    if before is not None and not (before.isdigit() and len(before) <= 18):
        raise ApiError(400, "before must be the next_cursor of a previous page")
    return {"actor": actor, "action": action, "since": since, "until": until,
            "before_id": int(before) if before else None}
