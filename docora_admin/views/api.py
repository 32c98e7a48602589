"""JSON endpoints under /admin/api/ for scripts (and the same URLs answered with fragments for
htmx where the UI needs them). Thin: parse, call a service, shape the answer."""
from flask import Blueprint, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from .. import auth, request_guard
from ..errors import ApiError
from ..extensions import htmx
from ..redact import scrub
from ..services import failed_list, retry
from . import fragments

bp = Blueprint("api", __name__, url_prefix="/admin/api")


def request_fields(*names):
    """Values of `names` from a JSON object body or a form; ApiError(400) for a malformed body."""
    if request.is_json:
        body = request_guard.json_object_body()
    else:
        body = request.form
    values = {}
    for name in names:
        value = body.get(name)
        values[name] = value if isinstance(value, str) else None
    return values


@bp.after_request
def _no_store(response):
    # Everything here is live state or credentials: never cache it. The same URL answers htmx
    # with HTML and everyone else with JSON.
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response


@bp.post("/login")
@auth.csrf.exempt  # it hands out the token; JSON bodies cannot be sent cross-site without CORS
def login():
    if not request.is_json:
        raise ApiError(400, "Send a JSON object {username, password} with "
                            "Content-Type: application/json")
    fields = request_fields("username", "password")
    if not (fields["username"] or "").strip() or not fields["password"]:
        raise ApiError(400, "username and password are required")
    username = fields["username"].strip()
    if (blocked := auth.reserve_login_attempt(username)) is not None:
        raise ApiError(429, blocked)
    if not auth.check_credentials(username, fields["password"]):
        raise ApiError(401, "Invalid credentials")
    return jsonify(success=True, csrf_token=auth.start_session(username))


@bp.post("/logout")
def logout():
    auth.end_session()
    return jsonify(success=True)


@bp.get("/session")
def session_info():
    return jsonify(authenticated=True, username=current_user.username, csrf_token=generate_csrf())


def _failed_row_json(row):
    return {
        "app_id": row["app_id"],
        "app_name": row["app_name"],
        "repository_id": row["repository_id"],
        "repository": f"{row['owner']}/{row['name']}",
        # Docora stores private repositories' URLs with user:token@ in them.
        "github_url": scrub(row["github_url"]),
        "status": row["status"],
        "last_error": row["last_error"],
        "retry_count": row["retry_count"],
        "updated_at": row["updated_at"].isoformat(),
    }


@bp.get("/notifications/failed")
def failed_notifications():
    page = failed_list.failed_page(failed_list.parse_query(request.args))
    return jsonify(data=[_failed_row_json(r) for r in page["rows"]],
                   pagination=page["pagination"])


# Retry endpoints. An htmx request gets the fragment of the UI piece it drives; see
# views/fragments.py. Everyone else gets JSON.

@bp.post("/retry")
def retry_one():
    fields = request_fields("app_id", "repository_id")
    app_id, repository_id = (fields["app_id"] or "").strip(), (fields["repository_id"] or "").strip()
    job_id = retry.retry_one(app_id, repository_id)
    if htmx:
        return fragments.retried_row(app_id, repository_id)
    return jsonify(data={"message": "Retry queued", "job_id": job_id})


def _bulk_started(result):
    if htmx:
        return fragments.bulk_panel(result["operation_id"])
    return jsonify(data={"message": "Bulk retry started", **result})


@bp.post("/retry/app/<app_id>")
def retry_app(app_id):
    return _bulk_started(retry.start_bulk_retry(app_id, current_user.username))


@bp.post("/retry/all")
def retry_all():
    return _bulk_started(retry.start_bulk_retry(None, current_user.username))


@bp.get("/retry/progress/<operation_id>")
def retry_progress(operation_id):
    if htmx:
        return fragments.bulk_panel(operation_id, announce_end="settled" not in request.args)
    return jsonify(data=retry.progress(operation_id))


@bp.post("/retry/cancel/<operation_id>")
def retry_cancel(operation_id):
    retry.cancel(operation_id)
    if htmx:
        return fragments.bulk_panel(operation_id)
    return jsonify(data={"message": "Cancellation requested"})


@bp.get("/retry/estimate")
def retry_estimate():
    app_id = request.args.get("app_id") or None
    if htmx:
        return fragments.bulk_panel(app_id=app_id, confirm=True)
    return jsonify(data={"total": retry.estimate(app_id)})


@bp.get("/retry/operations")
def retry_operations():
    return jsonify(data=retry.recent_operations())
