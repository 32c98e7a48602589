"""Login, logout, server-side sessions, CSRF and the one rule for anonymous requests.

Sessions live in Redis (Flask-Session), so logout deletes them for every copy of the cookie and
any web process can serve any request. The rule for a request without a login is decided once,
in `refuse_anonymous`: JSON 401 under /admin/api/, a full-page redirect for htmx, 302 otherwise.
"""
import hmac
from urllib.parse import urlsplit

from flask import current_app, jsonify, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.security import check_password_hash, generate_password_hash

from . import login_limit, runtime, sessions
from .errors import error_response

login_manager = LoginManager()
csrf = CSRFProtect()

# Endpoints reachable without a login. Everything else under /admin is refused.
PUBLIC_ENDPOINTS = {"pages.login", "api.login", "static",
                    # probes and the scrape (views/ops.py; /metrics has its own token)
                    "ops.healthz", "ops.readyz", "ops.metrics_endpoint"}

# Checked when the username is wrong, so a bad username costs as much time as a bad password.
_DUMMY_HASH = generate_password_hash("not-the-password")


class Admin(UserMixin):
    def __init__(self, username):
        self.id = username

    @property
    def username(self):
        return self.id


def init_app(app):
    sessions.init_app(app, runtime.redis_client())
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    # Registered before CSRFProtect's hook: an anonymous request learns it must log in,
    # not that its CSRF token is missing.
    app.before_request(refuse_anonymous)
    csrf.init_app(app)


@login_manager.user_loader
def load_admin(user_id):
    settings = runtime.settings()
    if hmac.compare_digest(user_id.encode(), settings.admin_username.encode()):
        return Admin(settings.admin_username)
    return None


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


def login_url_for_current_request():
    here = request.full_path.rstrip("?") if request.method == "GET" else request.path
    if request.headers.get("HX-Request") == "true":
        # A fragment URL makes a poor landing page: return to the page the fragment was on.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        here = current.path + (f"?{current.query}" if current.query else "")
    return url_for("pages.login", next=safe_next_path(here))


def refuse_anonymous():
    """before_request: every endpoint not in PUBLIC_ENDPOINTS needs a logged-in admin."""
    if sessions.session_store_down() and request.endpoint != "static":
        return error_response(503, "Redis unavailable, try again shortly")
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    if request.endpoint is None and not request.path.startswith("/admin"):
        return None  # a 404 outside our area: let Flask answer it
    if is_api_request() and request.headers.get("HX-Request") != "true":
        return jsonify(error="Not authenticated"), 401
    if request.headers.get("HX-Request") == "true":
        # htmx turns HX-Redirect into a full-page navigation, so the login form never lands
        # inside a fragment.
        response = current_app.response_class(status=401)
        response.headers["HX-Redirect"] = login_url_for_current_request()
        return response
    return redirect(login_url_for_current_request())


def _client_address():
    return request.remote_addr or "unknown"


def reserve_login_attempt(username):
    """Count this attempt against the per-address and per-username limits before the password
    is checked (atomically, see login_limit). None when it may go ahead, else why not."""
    return login_limit.reserve(_client_address(), username)


def check_credentials(username, password):
    """Constant-time check of the one admin, after reserve_login_attempt(); a correct password
    forgives the reserved attempt."""
    settings = runtime.settings()
    name_ok = hmac.compare_digest(username.encode(), settings.admin_username.encode())
    password_ok = check_password_hash(settings.admin_password_hash if name_ok else _DUMMY_HASH,
                                      password)
    if name_ok and password_ok:
        login_limit.forgive(_client_address(), username)
        return True
    return False


def start_session(username):
    """Log the admin in on a fresh session id (no fixation) and return a CSRF token for it."""
    from flask_wtf.csrf import generate_csrf

    session.clear()
    login_user(Admin(username))
    session.permanent = True
    current_app.session_interface.regenerate(session)
    return generate_csrf()


def end_session():
    """Log out and delete the server-side session, so copies of the cookie stop working."""
    logout_user()
    session.clear()
