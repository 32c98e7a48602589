"""Server-rendered pages under /admin/. Thin: parse, call a service, render."""
from flask import (Blueprint, abort, make_response, redirect, render_template, request,
                   url_for)
from flask_login import current_user

from .. import auth, db, runtime
from ..errors import ApiError
from ..roles import requires_role
from ..repositories import apps as apps_repo
from ..services.control import delivery_control, repository_circuit
from ..services.console import link_state, links, notification_list
from ..services.apps import onboarding
from ..services.retries import resync
from ..services.retries import operations as ops_service
from ..services.console import overview as overview_service
from . import fragments

bp = Blueprint("pages", __name__, url_prefix="/admin")


@bp.route("/login", methods=["GET", "POST"])
# No CSRF token: rendering one would store a session for every anonymous visitor. Login CSRF is
# still refused by same_origin (a POST a browser marks cross-site is a 403), and with one admin
# account a forged login has nothing to gain: it needs the admin's password to succeed.
@auth.csrf.exempt
@requires_role("viewer")  # logging in and out is not acting: every role may
def login():
    next_path = auth.safe_next_path(request.values.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_path)
    error, status, username = None, 200, ""
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        if not username or not password:
            error, status = "Enter your username and password.", 400
        elif (blocked := auth.reserve_login_attempt(username)) is not None:
            error, status = blocked, 429
        elif (account := auth.check_credentials(username, password)) is None:
            error, status = "Invalid credentials.", 401
        else:
            auth.start_session(account)
            return redirect(next_path)
    # A failed login keeps the username typed (never the password).
    return render_template("login.html", error=error, next_path=next_path,
                           username=username[:200],
                           ended=request.args.get("ended") == "1" and not error,
                           logged_out=request.args.get("logged_out") == "1" and not error), status


@bp.post("/logout")
@requires_role("viewer")
def logout():
    auth.end_session()
    # Said by a query flag, not a flash: a flash is a server-side session for an anonymous
    # browser, which every later anonymous request would renew.
    return redirect(url_for("pages.login", logged_out=1))


@bp.get("/")
def overview():
    return render_template("overview.html", stats=overview_service.stats(),
                           held_apps=delivery_control.held_apps(),
                           repository_circuits=repository_circuit.tripped())


@bp.get("/notifications")
def notifications():
    query = notification_list.parse_query(request.args)
    max_attempts = runtime.settings().max_retry_attempts
    page = notification_list.list_page(query, max_attempts)
    scope = {"app_id": query.app_id, "search": query.search,
             "failed_since": query.failed_since, "failed_until": query.failed_until,
             "cause": query.cause}
    # Only the failed view has the bulk panel. The list counted the failed links of this
    # filter: the button offers exactly those.
    panel = (fragments.page_panel(scope, counted=page["counts"]["failed"])
             if query.view == "failed" else None)
    return render_template("notifications/list.html", query=query, page=page,
                           page_sizes=notification_list.PAGE_SIZES,
                           apps=notification_list.apps_for_filter(query.view, query.app_id),
                           panel=panel)


@bp.get("/apps")
def apps():
    with db.connection() as conn:
        rows = apps_repo.list_apps_with_counts(conn)
    return render_template("apps/list.html", apps=rows,
                           delivery=delivery_control.states_of([r["app_id"] for r in rows]))


@bp.get("/apps/onboard")
@requires_role("admin", refused="onboard apps")
def onboard_app():
    response = make_response(render_template(
        "apps/onboard.html", suggested_key=onboarding.suggested_client_key(),
        allow_private=runtime.settings().allow_private_webhooks))
    response.headers["Cache-Control"] = "no-store"  # it holds a suggested secret
    return response


@bp.get("/apps/<app_id>")
def app_detail(app_id):
    with db.connection() as conn:
        app = apps_repo.get_app(conn, app_id)
        if app is None:
            abort(404)
        rows = apps_repo.list_app_links(conn, app_id)
    max_attempts = runtime.settings().max_retry_attempts
    delivery = delivery_control.state_of(app_id)
    circuits = repository_circuit.states_of(row["repository_id"] for row in rows)
    rows = [dict(row, circuit=circuits[row["repository_id"]],
                 **link_state.describe(row, max_attempts, delivery=delivery,
                                       circuit=circuits[row["repository_id"]]))
            for row in rows]
    return render_template("apps/detail.html", app=app, links=rows,
                           panel=fragments.page_panel({"app_id": app_id}),
                           delivery=delivery, resync_counts=resync.resync_counts(app_id))


@bp.get("/apps/<app_id>/links/<repository_id>")
def link_detail(app_id, repository_id):
    link, attempts, total = links.detail(app_id, repository_id)
    return render_template("links/detail.html", attempts=attempts, attempts_total=total,
                           skipping=links.last_skipped(attempts),
                           log_days=runtime.settings().attempt_log_retention_days,
                           detail_days=runtime.settings().attempt_detail_retention_days,
                           detail_cap=runtime.settings().attempt_detail_per_link,
                           **fragments.followed_context(link, app_id, repository_id))


def _poll_arg():
    poll = request.args.get("poll", "1")
    if not poll.isdigit():
        raise ApiError(400, "poll must be a whole number")
    return min(int(poll), 10_000)


@bp.get("/links/<app_id>/<repository_id>/row")
def link_row(app_id, repository_id):
    """The followed row of a link being retried (polled by the row itself)."""
    return fragments.followed_row(app_id, repository_id, poll=_poll_arg())


@bp.get("/links/<app_id>/<repository_id>/status")
def link_status(app_id, repository_id):
    """The link page's status section (polled by itself while the link moves)."""
    return fragments.followed_row(app_id, repository_id, poll=_poll_arg(), as_status=True)


@bp.get("/queue")
def queue():
    running = ops_service.active_operations()
    return render_template("queue.html", stats=overview_service.queue_stats(),
                           jobs=overview_service.queue_contents(), operations=running,
                           app_names=_app_names(running))


def _app_names(operations):
    return overview_service.app_names(op["app_id"] for op in operations if op.get("app_id"))


@bp.get("/operations")
def operations():
    recent = ops_service.recent_operations(100)
    return render_template("operations.html", operations=recent, app_names=_app_names(recent))


@bp.get("/operations/<operation_id>")
def operation_detail(operation_id):
    op = ops_service.progress(operation_id)
    after = request.args.get("after") or None
    if after is not None and not after.isdigit():
        raise ApiError(400, "after must be the next_cursor of a previous page")
    rows, cursor = ops_service.failed_again(operation_id, int(after) if after else None)
    retryable = (ops_service.count_failed_again_still_failed(operation_id)
                 if op["delivery_failed"] else 0)
    return render_template("operations/detail.html", op=op, failed_again=rows,
                           next_cursor=cursor, retryable=retryable, app_names=_app_names([op]),
                           panel=fragments.panel_context({}, operation=op))


@bp.get("/bulk-panel")
def bulk_panel():
    """The bulk panel for a scope (?app_id=&search=&failed_since=&failed_until=): the running
    operation, or idle."""
    scope = notification_list.parse_filter(request.args)
    context = fragments.page_panel(scope)
    return render_template("partials/_bulk_panel.html", **context)
