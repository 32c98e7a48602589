"""HTML fragments for htmx: one template per piece of UI, each holding all of its states."""
from flask import make_response, render_template

from .. import db
from ..repositories import apps as apps_repo
from ..repositories import retry_links
from ..services import retry


def retried_row(app_id, repository_id):
    """The failed-list row after its retry was queued."""
    with db.connection() as conn:
        status = retry_links.link_status(conn, app_id, repository_id)
    return render_template("notifications/_row_queued.html", app_id=app_id,
                           repository_id=repository_id, status=status)


def bulk_panel(operation_id=None, app_id=None, confirm=False, announce_end=True):
    """The bulk-retry panel: idle (or confirming) when operation_id is None, else the
    operation's state. The first time an ended state is served it triggers `bulk-finished`, so
    lists on the page refresh."""
    operation = retry.progress(operation_id) if operation_id else None
    if operation is not None:
        app_id = operation["app_id"]
    # Only the idle and confirm states show the failed count and the app's name: the polled
    # states skip those queries, which would otherwise run on every poll of every open panel.
    idle = operation is None
    body = render_template("partials/_bulk_panel.html", operation=operation, confirm=confirm,
                           scope_app_id=app_id,
                           scope_app_name=_app_name(app_id) if idle else None,
                           failed_total=_failed_total(app_id) if idle else None)
    response = make_response(body)
    if operation and operation["status"] not in ("running", "cancelling") and announce_end:
        response.headers["HX-Trigger"] = "bulk-finished"
    return response


def _app_name(app_id):
    if not app_id:
        return None
    with db.connection() as conn:
        app = apps_repo.get_app(conn, app_id)
    return app["app_name"] if app else app_id


def _failed_total(app_id):
    return retry.estimate(app_id)


def idle_panel_context(app_id=None, failed_total=None):
    """Context for including the panel in a full page: the running operation for this scope
    (so a reload re-attaches) or the idle state. Pass failed_total when the page has already
    counted the failed links of this scope."""
    running = [op for op in retry.active_operations()
               if op["app_id"] == app_id or (app_id is None and op["scope"] == "all")]
    operation = retry.progress(running[0]["operation_id"]) if running else None
    return {"operation": operation, "scope_app_id": app_id, "scope_app_name": _app_name(app_id),
            "failed_total": (failed_total if failed_total is not None else _failed_total(app_id))
            if operation is None else None}

