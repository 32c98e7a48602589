"""Endpoints for the machines that run us: liveness, readiness and metrics.

None of them needs a login, and none reads or writes a session (sessions.py opens none for
these paths): a load balancer probing every second must not fill Redis, and must still get an
answer about the process when Redis is down. /metrics is guarded by its own bearer token.
"""
from flask import Blueprint, abort, current_app, jsonify, request

from .. import metrics, runtime
from ..services.console import health

bp = Blueprint("ops", __name__)

PATHS = ("/healthz", "/readyz", "/metrics")


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz():
    """The process is alive and answering; no I/O."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """PostgreSQL and Redis answer within a short time: 200, else 503 naming what failed."""
    result = health.readiness()
    if result["ready"]:
        return jsonify(status="ready", checks=result["checks"])
    failed = sorted(name for name, value in result["checks"].items() if value != "ok")
    return jsonify(status="unavailable", error=f"not ready: {', '.join(failed)} unavailable",
                   failed=failed, checks=result["checks"]), 503


@bp.get("/metrics")
def metrics_endpoint():
    """Prometheus text format, for a scraper holding METRICS_TOKEN. Without the setting the
    endpoint does not exist (404); with it, a missing or wrong token is a 401."""
    token = runtime.settings().metrics_token
    if not token:
        abort(404)
    if not metrics.token_matches(token, request.headers.get("Authorization")):
        response = jsonify(error="A bearer token is required: Authorization: Bearer "
                                 "<METRICS_TOKEN>")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.exposition()
    return current_app.response_class(body, content_type=content_type)
