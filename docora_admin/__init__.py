"""Docora Admin: the operator's console for failed webhook deliveries."""
import logging
import sys
from datetime import timedelta

from flask import Flask

from . import (auth, cli, errors, log_format, metrics, request_guard, runtime, same_origin,
               security_headers, templating)
from .config import ConfigError, load_settings
from .extensions import htmx


def create_app(config=None):
    """Build the web app. `config` maps env-style names (DATABASE_URL, …) over os.environ;
    a bad setting ends the process with one line naming it."""
    import os

    env = dict(os.environ)
    env.update(config or {})
    if _running_migrate() and env.get("DATABASE_OWNER_URL"):
        # `migrate` is the owner's work from start to end (the app's role may not exist yet).
        env["DATABASE_URL"] = env["DATABASE_OWNER_URL"]
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        sys.exit(f"Configuration error: {exc}")

    app = Flask(__name__, template_folder="../templates", static_folder="../static",
                static_url_path="/admin/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        DOCORA_SETTINGS=settings,
        # Idle limit: every request sets the session's Redis lifetime back to it. The absolute
        # limit (SESSION_MAX_HOURS) is checked by auth.load_account.
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_idle_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        SESSION_COOKIE_NAME="docora_admin_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the server-side session
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        # One limit for the whole body and for form fields held in memory, so a 413 always
        # means the same thing (request_guard answers it).
        MAX_CONTENT_LENGTH=settings.max_request_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_request_body_bytes,
        TESTING=bool(env.get("TESTING")),
    )
    log_format.install(getattr(logging, settings.log_level),
                       json_lines=settings.log_format == "json")
    for name in ("gunicorn.error", "gunicorn.access"):
        # Under gunicorn, its own lines (start-up, worker exits, access) in the same format.
        if logging.getLogger(name).handlers:
            log_format.install(logger=logging.getLogger(name),
                               json_lines=settings.log_format == "json")
    runtime.start(settings, pool_size=int(env.get("WEB_POOL_SIZE", "10")))

    htmx.init_app(app)
    metrics.init_app(app)  # first: its timing covers every other hook
    request_guard.init_app(app)  # first: hostile input never reaches auth, CSRF or a view
    same_origin.init_app(app)  # before CSRF: a leaked token does not help another site
    auth.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    templating.init_app(app)
    security_headers.init_app(app)

    from . import tasks  # noqa: F401  (the web queues them: services find them in task_handles)
    from .views import accounts as accounts_views
    from .views import api, control_api, dashboard_api, exports, ops, pages
    from .views import audit as audit_views
    from .views import causes as causes_views
    from .views import charts as charts_views
    from .views import alerts as alerts_views
    app.register_blueprint(ops.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(control_api.bp)
    app.register_blueprint(dashboard_api.bp)
    app.register_blueprint(accounts_views.bp)
    app.register_blueprint(accounts_views.me)
    app.register_blueprint(audit_views.bp)
    app.register_blueprint(causes_views.bp)
    app.register_blueprint(charts_views.bp)
    app.register_blueprint(alerts_views.bp)
    app.register_blueprint(alerts_views.api)
    _sync_environment_account(settings)
    return app


def _running_migrate():
    """`flask … migrate` builds the app before it migrates: no warning about missing tables."""
    from pathlib import Path

    return Path(sys.argv[0]).name == "flask" and "migrate" in sys.argv[1:]


def _sync_environment_account(settings):
    """Bring the ADMIN_USERNAME account in step with the environment. A database that is not
    migrated yet (`flask migrate` builds the app first) or not reachable is left for later: the
    migrate command and the next start-up do it."""
    import psycopg

    from .db import DatabaseUnavailable
    from .services.team import accounts

    if _running_migrate():
        return  # the command syncs the account itself, once the tables exist
    try:
        accounts.sync_environment_account(settings)
    except psycopg.errors.UndefinedTable:
        logging.getLogger(__name__).warning(
            "accounts table missing: run `flask --app app migrate`")
    except DatabaseUnavailable as exc:
        logging.getLogger(__name__).error("account %s not checked at start-up: %s",
                                          settings.admin_username, exc)
