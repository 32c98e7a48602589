"""Server-rendered pages under /admin/. Thin: parse, call a service, render."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import auth, db
from . import fragments
from ..repositories import apps as apps_repo
from ..services import failed_list, retry
from ..services import overview as overview_service

bp = Blueprint("pages", __name__, url_prefix="/admin")


@bp.route("/login", methods=["GET", "POST"])
# No CSRF token: rendering one would store a session for every anonymous visitor. Login CSRF is
# still refused by same_origin (a POST a browser marks cross-site is a 403), and with one admin
# account a forged login has nothing to gain: it needs the admin's password to succeed.
@auth.csrf.exempt
def login():
    next_path = auth.safe_next_path(request.values.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_path)
    error, status = None, 200
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        if not username or not password:
            error, status = "Enter your username and password.", 400
        elif (blocked := auth.reserve_login_attempt(username)) is not None:
            error, status = blocked, 429
        elif not auth.check_credentials(username, password):
            error, status = "Invalid credentials.", 401
        else:
            auth.start_session(username)
            return redirect(next_path)
    return render_template("login.html", error=error, next_path=next_path), status


@bp.post("/logout")
def logout():
    auth.end_session()
    flash("You have been logged out.", "info")
    return redirect(url_for("pages.login"))


@bp.get("/")
def overview():
    return render_template("overview.html", stats=overview_service.stats())


@bp.get("/notifications")
def notifications():
    query = failed_list.parse_query(request.args)
    page = failed_list.failed_page(query)
    return render_template("notifications/list.html", query=query, page=page,
                           page_sizes=failed_list.PAGE_SIZES, sort_keys=failed_list.SORT_KEYS,
                           apps=failed_list.apps_with_failures(),
                           # Without a search the list's total is the scope's failed count.
                           panel=fragments.idle_panel_context(
                               query.app_id or None,
                               None if query.search else page["pagination"]["total"]))


@bp.get("/apps")
def apps():
    with db.connection() as conn:
        rows = apps_repo.list_apps_with_counts(conn)
    return render_template("apps/list.html", apps=rows)


@bp.get("/apps/<app_id>")
def app_detail(app_id):
    with db.connection() as conn:
        app = apps_repo.get_app(conn, app_id)
        if app is None:
            abort(404)
        links = apps_repo.list_app_links(conn, app_id)
    return render_template("apps/detail.html", app=app, links=links,
                           panel=fragments.idle_panel_context(app_id))


@bp.get("/queue")
def queue():
    return render_template("queue.html", stats=overview_service.queue_stats(),
                           jobs=overview_service.queue_contents(),
                           operations=retry.active_operations())


@bp.get("/operations")
def operations():
    return render_template("operations.html", operations=retry.recent_operations(100))


@bp.get("/bulk-panel")
def bulk_panel():
    """The bulk panel for a scope (?app_id=): the running operation, or idle."""
    app_id = request.args.get("app_id") or None
    return render_template("partials/_bulk_panel.html", **fragments.idle_panel_context(app_id),
                           confirm=False)
