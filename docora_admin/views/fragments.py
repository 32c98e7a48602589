"""HTML fragments for htmx: one template per piece of UI, each holding all of its states."""
from datetime import datetime, timezone

from flask import make_response, render_template, url_for

from .. import db
from ..errors import ApiError
from ..repositories import apps as apps_repo
from ..services.console import links
from ..services.retries import operations, retry

# A followed row polls every ROW_POLL_S seconds for at most ROW_POLLS times (3 minutes), then
# says it stopped watching and links to the link page.
ROW_POLL_S = 2
ROW_POLLS = 90
# A link whose next attempt is further away than this is shown waiting; the row stops polling.
ROW_FOLLOW_WAIT_S = 60


def followed_row(app_id, repository_id, poll=0, as_status=False, acted=False):
    """The list row of a link being retried (or, `as_status`, the link page's status section),
    polled until its attempt resolves: Queued → Delivering → Delivered, Failed again, or
    Retrying at a time. When the retry (`acted`: this request queued it) moves the link from
    one count to another, and again when it resolves (or stops watching), `counts-changed`
    lets the page refresh its counts."""
    try:
        link = links.load(app_id, repository_id)
    except ApiError:
        if as_status:
            raise  # the link page of an unknown link is a 404
        link = None  # removed meanwhile: the row says so
    context = followed_context(link, app_id, repository_id, poll)
    response = make_response(render_template(
        "links/_status.html" if as_status else "notifications/_followed_row.html", **context))
    if acted or (poll > 0 and not context["follow"]):
        response.headers["HX-Trigger"] = "counts-changed"
    return response


def followed_context(link, app_id, repository_id, poll=0):
    """Template context of a link (as links.load gives it, or None) that follows its attempt by
    polling itself."""
    follow = link is not None and _still_moving(link) and poll < ROW_POLLS
    return {"link": link, "app_id": app_id, "repository_id": repository_id, "follow": follow,
            "gave_up": poll >= ROW_POLLS, "next_poll": poll + 1, "poll_seconds": ROW_POLL_S}


def _still_moving(link):
    """Whether something will happen to the link soon enough to keep watching."""
    if link["state"] in ("queued", "delivering"):
        return True
    if link["state"] == "retrying":
        due = link["next_attempt_at"]
        return due is None or (due - datetime.now(timezone.utc)).total_seconds() \
            <= ROW_FOLLOW_WAIT_S
    return False


# Notices a polled panel keeps (the polling URL carries the key, never text): they stay true
# for as long as the panel shows that operation.
NOTES = {
    "busy": "A bulk operation was already running for this scope, so no second one was "
            "started: this is the one running.",
}

# What an active operation is doing, in the notice of a page it covers.
_DOING = {"running": "running", "paused": "paused", "cancelling": "stopping"}


def bulk_panel(operation_id=None, scope=None, confirm=False, seen=None, notice=None,
               note=None):
    """The bulk-retry panel: idle (or confirming) for a scope (a filter: app_id, search,
    failed_since, failed_until) when operation_id is None, else the operation's state.

    Each time an operation's panel is first served in a new phase after its reset (delivering,
    then settled; `seen` is the phase the polling panel last showed) it triggers
    `bulk-finished`, so lists on the page refresh: reset links leave the failed list, links
    that failed again come back."""
    operation = operations.progress(operation_id) if operation_id else None
    if operation is not None and scope is None:
        scope = scope_of(operation)
    context = panel_context(scope or {}, operation=operation, confirm=confirm)
    note = note if note in NOTES and operation is not None else None
    context["notice"] = notice or NOTES.get(note)
    context["note"] = note
    response = make_response(render_template("partials/_bulk_panel.html", **context))
    if operation and operation["phase"] != "resetting" and operation["phase"] != seen:
        response.headers["HX-Trigger"] = "bulk-finished"
    return response


def scope_of(operation):
    """The list filter an operation was started on (its app, and a selection's filter)."""
    chosen = operation.get("filter") or {}
    return {"app_id": operation["app_id"], "search": chosen.get("search"),
            "failed_since": chosen.get("failed_since"),
            "failed_until": chosen.get("failed_until"), "cause": chosen.get("cause")}


def panel_context(scope, operation=None, confirm=False, counted=None):
    """Template context of the bulk panel. `scope` is the list's filter; `counted` the number of
    failed links it matches when the page already counted them."""
    scope = {k: v for k, v in scope.items() if v}
    app_id = scope.get("app_id")
    idle = operation is None
    failed_total = None
    if idle:
        failed_total = counted if counted is not None else retry.estimate(
            app_id, scope.get("search"), scope.get("failed_since"), scope.get("failed_until"),
            scope.get("cause"))
    return {"operation": operation, "confirm": confirm, "scope": scope,
            "scope_args": _scope_args(scope), "scope_app_id": app_id,
            # Only the idle and confirm states show the app's name: the polled states skip the
            # query, which would otherwise run on every poll of every open panel.
            "scope_app_name": _app_name(app_id) if idle else None,
            "filtered": any(k != "app_id" for k in scope), "failed_total": failed_total,
            "operation_url": url_for("pages.operation_detail",
                                     operation_id=operation["operation_id"])
            if operation else None}


def _scope_args(scope):
    args = {}
    for key, value in scope.items():
        if isinstance(value, str) and key.startswith("failed_"):
            value = datetime.fromisoformat(value)  # as a selection's filter stores it
        args[key] = (value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")
                     if hasattr(value, "strftime") else value)
    return args


def page_panel(scope, counted=None):
    """The panel a full page starts with: the running operation that covers this scope (so a
    reload re-attaches, and an app page shows a global run), or the idle state."""
    running = operations.running_for_scope(scope.get("app_id"))
    notice = None
    if running and running["app_id"] != scope.get("app_id"):
        doing = _DOING.get(running["status"], running["status"])
        notice = (f"A bulk retry of all apps is {doing}; it covers this app's failed links."
                  if running["scope"] == "all" else
                  f"A bulk retry of a selection across apps is {doing}.")
    own = running is not None and running["app_id"] == scope.get("app_id")
    context = panel_context(scope_of(running) if own else scope, operation=running,
                            counted=counted)
    context["notice"] = notice
    context["note"] = None
    return context


def _app_name(app_id):
    if not app_id:
        return None
    with db.connection() as conn:
        app = apps_repo.get_app(conn, app_id)
    return app["app_name"] if app else app_id
