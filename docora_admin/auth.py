"""Login, logout, server-side sessions, CSRF and the one rule for anonymous requests.

Sessions live in Redis (Flask-Session), so logout deletes them for every copy of the cookie and
any web process can serve any request. The rule for a request without a login is decided once,
in `refuse_anonymous`: JSON 401 under /admin/api/, a full-page redirect for htmx, 302 otherwise.
Roles are enforced right after it (roles.enforce).

A session holds "<account id>:<session epoch>" as its user id and the time it logged in. It
stops working when the account is disabled or its epoch moves (new password, new role, all
sessions ended), when an admin ends it (it leaves the account's session index), after
SESSION_IDLE_MINUTES without a request, and SESSION_MAX_HOURS after its login whatever happens.
"""
import logging
import secrets
import time
from urllib.parse import urlsplit

import redis
from flask import current_app, g, jsonify, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect

from . import login_limit, roles, runtime, same_origin, sessions
from .db import DatabaseUnavailable
from .errors import error_response
from .services.team import account_sessions, accounts, audit

log = logging.getLogger(__name__)

login_manager = LoginManager()
csrf = CSRFProtect()

# Endpoints reachable without a login. Everything else under /admin is refused.
PUBLIC_ENDPOINTS = {"pages.login", "api.login", "static",
                    # probes and the scrape (views/ops.py; /metrics has its own token)
                    "ops.healthz", "ops.readyz", "ops.metrics_endpoint"}

LOGIN_AT = "login_at"
ACCOUNT_STORE_DOWN = "docora_admin.account_store_down"


class Account(UserMixin):
    """The logged-in account, as loaded for this request."""

    def __init__(self, row):
        self.account_id = row["id"]
        self.username = row["username"]
        self.role = row["role"]
        self.id = f"{row['id']}:{row['session_epoch']}"


def init_app(app):
    sessions.init_app(app, runtime.redis_client())
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    # Registered before CSRFProtect's hook: an anonymous request learns it must log in,
    # not that its CSRF token is missing; a viewer learns its role cannot act.
    app.before_request(refuse_anonymous)
    app.after_request(_set_device_cookie)
    roles.init_app(app)
    # Flask-WTF's own hook would check every POST; protect_csrf checks all but same-origin JSON.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    app.before_request(protect_csrf)
    audit.set_context_provider(_audit_context)


def protect_csrf():
    """before_request: the CSRF token check for every state-changing request, except the
    same-origin JSON the original Docora dashboard sends without one (see
    same_origin.is_same_origin_json for why that is safe). Views marked @csrf.exempt stay so."""
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if same_origin.is_same_origin_json():
        return
    csrf.protect(apply_exemptions=True)


def _audit_context():
    from flask import has_request_context

    if not has_request_context():
        return None, None
    actor = current_user.username if current_user.is_authenticated else None
    return actor, _client_address()


@login_manager.user_loader
def load_account(user_id):
    """The account of this session, or None (anonymous) when the session no longer counts."""
    account_id, _, epoch = user_id.partition(":")
    if not (account_id.isdigit() and epoch.isdigit()):
        return None  # a session from before accounts existed: log in again
    settings = runtime.settings()
    try:
        login_at = float(session.get(LOGIN_AT, 0))
        if time.time() - login_at > settings.session_max_hours * 3600:
            g.session_expired = True
            return None
        known = account_sessions.check(int(account_id), session.sid, int(epoch))
        if known == account_sessions.GONE:
            return None
        if known == account_sessions.VALID and session.get("role") in roles.ROLES and \
                session.get("username"):
            # The epoch has not moved since this session logged in, so neither has its role
            # (a new role moves it): no PostgreSQL query.
            return Account({"id": int(account_id), "username": session["username"],
                            "role": session["role"], "session_epoch": int(epoch)})
        row = accounts.load_for_session(int(account_id), int(epoch))
        if row is None:
            return None
        account_sessions.remember_epoch(row["id"], row["session_epoch"])
    except DatabaseUnavailable:
        # Answered as a 503 by refuse_anonymous; raising here would break the error page too.
        request.environ[ACCOUNT_STORE_DOWN] = True
        return None
    except redis.RedisError:
        request.environ[sessions.STORE_DOWN] = True
        return None
    return Account(row)


def is_api_request():
    return request.path.startswith("/admin/api/")


def safe_next_path(candidate):
    """Return `candidate` if it is a local path under /admin, else the overview."""
    fallback = url_for("pages.overview")
    if (not candidate or not candidate.startswith("/") or candidate.startswith("//")
            or not candidate.isprintable()):  # CR/LF would break the Location header
        return fallback
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or "\\" in candidate or not parts.path.startswith("/admin"):
        return fallback
    return candidate


def login_url_for_current_request(ended=False):
    """The login page, back here afterwards; `ended`: it says the session ended."""
    here = request.full_path.rstrip("?") if request.method == "GET" else request.path
    if request.headers.get("HX-Request") == "true":
        # A fragment URL makes a poor landing page: return to the page the fragment was on.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        here = current.path + (f"?{current.query}" if current.query else "")
    return url_for("pages.login", next=safe_next_path(here), **({"ended": 1} if ended else {}))


def refuse_anonymous():
    """before_request: every endpoint not in PUBLIC_ENDPOINTS needs a logged-in account."""
    if sessions.session_store_down() and request.endpoint != "static":
        return error_response(503, "Redis unavailable, try again shortly")
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    if request.environ.get(ACCOUNT_STORE_DOWN):
        return error_response(503, "Database unavailable, try again shortly")
    if sessions.session_store_down():
        return error_response(503, "Redis unavailable, try again shortly")
    # The browser came with a session that has ended: say so on the login page, rather than
    # showing it as if the user had never logged in.
    ended = bool(session.get("_user_id")) or sessions.session_vanished()
    if ended:
        # A session that no longer counts (ended, expired, its account changed, or gone from
        # the store): forget it, so its key goes and the browser's cookie with it.
        if g.get("session_expired"):
            audit.record_alone("session.expire", target=_session_username(),
                               actor=None, source_address=_client_address())
        session.clear()
    if request.endpoint is None and not request.path.startswith("/admin"):
        return None  # a 404 outside our area: let Flask answer it
    if is_api_request() and request.headers.get("HX-Request") != "true":
        return jsonify(error="Not authenticated"), 401
    if request.headers.get("HX-Request") == "true":
        # htmx turns HX-Redirect into a full-page navigation, so the login form never lands
        # inside a fragment.
        response = current_app.response_class(status=401)
        response.headers["HX-Redirect"] = login_url_for_current_request(ended)
        return response
    return redirect(login_url_for_current_request(ended))


def _client_address():
    return request.remote_addr or "unknown"


def _session_username():
    account_id = (session.get("_user_id") or "").partition(":")[0]
    return session.get("username") or (f"account {account_id}" if account_id else None)


def reserve_login_attempt(username):
    """Count this attempt against the per-address and per-username limits before the password
    is checked (atomically, see login_limit; a browser holding this account's device token has
    a budget of its own while the username is locked). None when it may go ahead, else why not;
    a refusal is audited once per limit window."""
    blocked = login_limit.reserve(_client_address(), username, _device_token(username))
    if blocked is not None and login_limit.first_refusal(_client_address(), username, blocked):
        name = _audited_name(username)
        audit.record_alone("login.lockout", target=name,
                           details={"username": name, "reason": blocked})
    return blocked


def check_credentials(username, password):
    """The account these credentials open (after reserve_login_attempt()), or None. A correct
    password forgives the reserved attempt; a wrong one is audited with the account's name, or
    as unknown (a password typed into the username field is not kept)."""
    account = accounts.authenticate(username, password)
    if account is not None:
        forgive_login_attempt(username)
        return account
    name = _audited_name(username)
    audit.record_alone("login.failure", target=name, details={"username": name})
    return None


def forgive_login_attempt(username):
    """The password given with a reserved attempt was right (see reserve_login_attempt)."""
    login_limit.forgive(_client_address(), username, _device_token(username))


def _audited_name(username):
    """The account's own name for the audit trail, or a fixed word for one that is not."""
    return accounts.known_username(username) or UNKNOWN_ACCOUNT


# OWASP's device cookies: a browser that logged in to an account carries a signed token for it
# (per account, random per login), so a stranger's failed logins cannot lock the owner out.
DEVICE_COOKIE = "docora_admin_device"
DEVICE_MAX_AGE_S = 180 * 24 * 3600
UNKNOWN_ACCOUNT = "(unknown account)"


def _device_signer():
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(current_app.secret_key, salt="docora-admin-device")


def _device_token(username):
    """The device token this browser holds for `username`, when its signature and age check."""
    from itsdangerous import BadData

    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw or len(raw) > 500:
        return None
    try:
        data = _device_signer().loads(raw, max_age=DEVICE_MAX_AGE_S)
    except BadData:
        return None
    if not isinstance(data, dict) or data.get("u") != login_limit.canonical(username):
        return None
    token = data.get("n")
    return token if isinstance(token, str) and token.isalnum() and len(token) <= 32 else None


def _set_device_cookie(response):
    """after_request: the device token of a login that just succeeded."""
    value = g.pop("device_cookie", None)
    if value:
        response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_MAX_AGE_S, path="/admin",
                            httponly=True, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response


def start_session(account):
    """Log the account in on a fresh session id (no fixation), list the session under the
    account, audit the login, and return a CSRF token for it."""
    from flask_wtf.csrf import generate_csrf

    settings = runtime.settings()
    # Recorded first: should the database fail now, the login fails with it (503) instead of
    # leaving a session that was never audited.
    audit.record_alone("login.success", target=account["username"],
                       actor=account["username"])
    session.clear()
    user = Account(account)
    login_user(user)
    session.permanent = True
    session[LOGIN_AT] = time.time()
    session["username"] = account["username"]
    session["role"] = account["role"]
    current_app.session_interface.regenerate(session)
    g.device_cookie = _device_signer().dumps(
        {"u": login_limit.canonical(account["username"]), "n": secrets.token_hex(8)})
    account_sessions.add(account["id"], session.sid, _client_address(),
                         request.headers.get("User-Agent"), settings.session_max_hours * 3600,
                         epoch=account["session_epoch"])
    return generate_csrf()


def end_session():
    """Log out and delete the server-side session, so copies of the cookie stop working."""
    username = current_user.username if current_user.is_authenticated else None
    logout_user()
    session.clear()
    if username:
        try:
            audit.record_alone("logout", target=username, actor=username)
        except DatabaseUnavailable:
            # Logging out must work whatever is down; the session is gone either way.
            log.error("logout of %s not recorded in the audit trail: database unavailable",
                      username)
