"""The Accounts pages (admins only): list, add, change role or password, disable, enable, and
see and end an account's sessions. Plain forms: each POST redirects back with a message, or
shows the page again with the error and its status."""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import auth, runtime
from ..errors import ApiError
from ..roles import ROLES, requires_role
from ..services.team import accounts

bp = Blueprint("accounts", __name__, url_prefix="/admin/accounts")
# Every account's own page: its sessions and its password.
me = Blueprint("me", __name__, url_prefix="/admin/account")


def _lifetimes():
    settings = runtime.settings()
    return settings.session_idle_minutes * 60, settings.session_max_hours * 3600


@bp.get("/")
@requires_role("admin")
def index(error=None, status=200, form=None):
    return render_template("accounts/list.html", accounts=accounts.list_accounts(), roles=ROLES,
                           error=error, form=form or {}), status


@bp.post("/")
@requires_role("admin")
def create():
    form = {name: request.form.get(name) or "" for name in ("username", "role")}
    try:
        accounts.create(form["username"].strip(), form["role"], request.form.get("password"))
    except ApiError as exc:
        return index(error=exc.message, status=exc.status, form=form)
    flash(f"Account {form['username'].strip()} added as {form['role']}.", "info")
    return redirect(url_for("accounts.detail", username=form["username"].strip()))


@bp.get("/<username>")
@requires_role("admin")
def detail(username, error=None, status=200):
    account, sessions = accounts.sessions_of(username, *_lifetimes())
    return render_template("accounts/detail.html", account=account, sessions=sessions,
                           roles=ROLES, error=error,
                           lock=accounts.login_lock(account["username"])), status


def _change(username, change, done):
    """Run a change; on refusal show the account's page with the error (404 stays a 404)."""
    try:
        change()
    except ApiError as exc:
        if exc.status == 404:
            raise
        return detail(username, error=exc.message, status=exc.status)
    flash(done, "info")
    return redirect(url_for("accounts.detail", username=username))


@bp.post("/<username>/role")
@requires_role("admin")
def set_role(username):
    role = request.form.get("role")
    return _change(username, lambda: accounts.set_role(username, role),
                   f"{username} is now {role}; their sessions were ended.")


@bp.post("/<username>/password")
@requires_role("admin")
def set_password(username):
    password = request.form.get("password")
    return _change(username, lambda: accounts.set_password(username, password),
                   f"{username} has a new password; their sessions were ended.")


@bp.post("/<username>/disable")
@requires_role("admin")
def disable(username):
    return _change(username, lambda: accounts.disable(username),
                   f"{username} is disabled; their sessions were ended.")


@bp.post("/<username>/enable")
@requires_role("admin")
def enable(username):
    return _change(username, lambda: accounts.enable(username), f"{username} is enabled.")


@bp.post("/<username>/unlock")
@requires_role("admin")
def unlock(username):
    return _change(username, lambda: accounts.lift_login_lock(username),
                   f"{username} may log in again: the failed-login lock was lifted.")


@bp.post("/<username>/sessions/end-all")
@requires_role("admin")
def end_all_sessions(username):
    return _change(username, lambda: accounts.end_all_sessions(username),
                   f"Every session of {username} was ended.")


@bp.post("/<username>/sessions/<handle>/end")
@requires_role("admin")
def end_session(username, handle):
    return _change(username, lambda: accounts.end_session(username, handle),
                   f"That session of {username} was ended.")


@me.get("/")
def own_account(error=None, status=200):
    account, sessions = accounts.sessions_of(current_user.username, *_lifetimes())
    return render_template("accounts/me.html", account=account, sessions=sessions,
                           error=error), status


@me.post("/password")
@requires_role("viewer")  # changing one's own password is not acting on deliveries
def change_own_password():
    """The current password is checked against the login limits, like a login: a stolen
    session cannot be used to guess it."""
    name = current_user.username
    new_password = request.form.get("new_password")
    try:
        accounts.check_password(new_password)
    except ApiError as exc:
        return own_account(error=exc.message, status=exc.status)
    if (blocked := auth.reserve_login_attempt(name)) is not None:
        return own_account(error=blocked, status=429)
    try:
        account = accounts.change_own_password(name, request.form.get("current_password"),
                                               new_password)
    except ApiError as exc:
        return own_account(error=exc.message, status=exc.status)
    auth.forgive_login_attempt(name)
    auth.start_session(account)  # every session ended; this browser goes on in a new one
    flash("Password changed. Your other sessions were ended.", "info")
    return redirect(url_for("me.own_account"))
