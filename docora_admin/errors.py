"""Error responses: JSON `{"error": ...}` under /admin/api/, a plain page elsewhere.

No request a client can send ends in a traceback; an outage of PostgreSQL or Redis is a 503.
"""
import logging

import redis
from flask import current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .db import DatabaseUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An expected failure with a status and a one-line message (plus optional JSON fields)."""

    def __init__(self, status, message, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def error_response(status, message, **extra):
    if request.path.startswith("/admin/api/") and request.headers.get("HX-Request") != "true":
        return jsonify(error=message, **extra), status
    if request.headers.get("HX-Request") == "true":
        # htmx swaps error responses (see htmx-config in base.html). They land in the element
        # "<target id>-error" the page keeps next to the target, not over the target itself.
        response = current_app.make_response(
            (render_template("partials/_error.html", message=message, status=status), status))
        target = request.headers.get("HX-Target", "")
        if target and target.replace("-", "").replace("_", "").isalnum():
            response.headers["HX-Retarget"] = f"#{target}-error"
            response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render_template("error.html", message=message, status=status), status


def init_app(app):
    @app.errorhandler(ApiError)
    def _api_error(exc):
        return error_response(exc.status, exc.message, **exc.extra)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc):
        return error_response(400, "CSRF token missing or invalid: reload the page or fetch a "
                                   "new token from /admin/api/session")

    @app.errorhandler(DatabaseUnavailable)
    def _database_down(exc):
        log.error("database unavailable: %s", exc)
        return error_response(503, "Database unavailable, try again shortly")

    @app.errorhandler(redis.RedisError)
    def _redis_down(exc):
        log.error("redis unavailable: %s", exc.__class__.__name__)
        return error_response(503, "Redis unavailable, try again shortly")

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        return error_response(exc.code, exc.description if exc.code != 404 else "Not found")

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "Internal error; it has been logged")
