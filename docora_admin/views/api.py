"""JSON endpoints under /admin/api/ for scripts (and the same URLs answered with fragments for
htmx where the UI needs them). Thin: parse, call a service, shape the answer."""
from flask import Blueprint, current_app, jsonify, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from .. import auth, request_guard, runtime
from ..roles import requires_role
from ..errors import ApiError
from ..extensions import htmx
from ..redact import scrub
from ..services.console import links, notification_list
from ..services.retries import operations, retry, selection
from ..services.delivery.payloads import iso_timestamp
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


def request_body():
    """The whole body as a dict: a JSON object, or a form (the console's own). A form's repeated
    `link` fields ("<app_id> <repository_id>", from the list's checkboxes) become `links`."""
    if request.is_json:
        return request_guard.json_object_body()
    form = request.form
    body = {name: form.get(name) for name in form if name not in ("link", "csrf_token")}
    chosen = form.getlist("link")
    if chosen:
        pairs = [value.split(" ", 1) for value in chosen]
        body["links"] = [{"app_id": pair[0], "repository_id": pair[1]} if len(pair) == 2
                         else {} for pair in pairs]
    return body


@bp.after_request
def _no_store(response):
    # Everything here is live state or credentials: never cache it. The same URL answers htmx
    # with HTML and everyone else with JSON.
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response


@bp.post("/login")
@auth.csrf.exempt  # it hands out the token; JSON bodies cannot be sent cross-site without CORS
@requires_role("viewer")  # logging in and out is not acting: every role may
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
    account = auth.check_credentials(username, fields["password"])
    if account is None:
        raise ApiError(401, "Invalid credentials")
    return jsonify(success=True, csrf_token=auth.start_session(account))


@bp.post("/logout")
@requires_role("viewer")
def logout():
    auth.end_session()
    return jsonify(success=True)


@bp.get("/session")
def session_info():
    return jsonify(authenticated=True, username=current_user.username, role=current_user.role,
                   csrf_token=generate_csrf())


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


def list_row_json(row):
    """A row of a list (failed or in progress) as the API and the exports give it."""
    return dict(_failed_row_json(row), state=row["state"], state_text=row["text"],
                next_attempt_at=row["next_attempt_at"].isoformat()
                if row.get("next_attempt_at") and row["status"] == "pending_snapshot" else None)


def _original_row_json(row):
    """A list row with the original Docora's fields (DOCORA_CONTRACT.md §2) before ours:
    repository_name is owner/name, error_message the last error ("Unknown error" without one),
    timestamp the last scan (ISO 8601; now when never scanned), as the original answers."""
    scanned = row.get("last_scanned_at")
    return {"repository_name": f"{row['owner']}/{row['name']}",
            "error_message": row["last_error"] or "Unknown error",
            "timestamp": iso_timestamp(scanned.timestamp() if scanned else None),
            "last_scanned_at": scanned.isoformat() if scanned else None,
            **list_row_json(row)}


def _notifications(view):
    notification_list.refuse_unknown(request.args, notification_list.LIST_PARAMS)
    query = notification_list.parse_query({**request.args.to_dict(), "view": view},
                                          notification_list.API_DEFAULT_SORT)
    page = notification_list.list_page(query, runtime.settings().max_retry_attempts)
    return jsonify(data={"data": [_original_row_json(r) for r in page["rows"]],
                         "pagination": page["pagination"], "counts": page["counts"]})


@bp.get("/notifications/failed")
def failed_notifications():
    return _notifications("failed")


@bp.get("/notifications/in-progress")
def in_progress_notifications():
    return _notifications("in_progress")


@bp.get("/links/<app_id>/<repository_id>")
def link_detail(app_id, repository_id):
    link, attempts, total = links.detail(app_id, repository_id)
    return jsonify(data={**links.link_json(link, attempts), "attempts_total": total})


# Retry endpoints. An htmx request gets the fragment of the UI piece it drives; see
# views/fragments.py. Everyone else gets JSON.

def _link_fields():
    fields = request_fields("app_id", "repository_id")
    return (fields["app_id"] or "").strip(), (fields["repository_id"] or "").strip()


def _on_link_page():
    # The same retry answers the list (a row) and the link page (its status section).
    return request.headers.get("HX-Target") == "link-status"


@bp.post("/retry")
def retry_one():
    return _queued_one(retry.retry_one, "Retry queued")


@bp.post("/retry/now")
def retry_now():
    return _queued_one(retry.retry_now, "Attempt queued now")


def _queued_one(queue, message):
    app_id, repository_id = _link_fields()
    job_id = queue(app_id, repository_id)
    if htmx:
        return fragments.followed_row(app_id, repository_id, as_status=_on_link_page(),
                                      acted=True)
    return jsonify(data={"message": message, "job_id": job_id})


def _bulk_started(start, to_page=False):
    """Run a bulk start; htmx gets the panel of the operation that covers the scope: the new
    one, or the one already running when the scope is busy (a 409 shows state, not an
    error). `to_page` sends htmx on to the new operation's page instead."""
    try:
        result = start()
    except ApiError as exc:
        if htmx and exc.status == 409 and exc.extra.get("operation_id"):
            return fragments.bulk_panel(exc.extra["operation_id"], note="busy")
        raise
    if htmx and to_page:
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = url_for("pages.operation_detail",
                                                  operation_id=result["operation_id"])
        return response
    if htmx:
        return fragments.bulk_panel(result["operation_id"])
    return jsonify(data={"message": "Bulk retry started", **result})


@bp.post("/retry/app/<app_id>")
def retry_app(app_id):
    return _bulk_started(lambda: retry.start_bulk_retry(app_id, current_user.username))


@bp.post("/retry/all")
def retry_all():
    return _bulk_started(lambda: retry.start_bulk_retry(None, current_user.username))


@bp.post("/retry/selection")
def retry_selection():
    body = request_body()
    # The console's "Retry the N that failed again" goes on to the new operation's page.
    then = body.pop("then", None)
    return _bulk_started(lambda: retry.start_selection(selection.parse(body),
                                                       current_user.username),
                         to_page=then == "operation_page")


@bp.get("/retry/progress/<operation_id>")
def retry_progress(operation_id):
    if htmx:
        return fragments.bulk_panel(operation_id, seen=request.args.get("seen"),
                                    note=request.args.get("note"))
    return jsonify(data=operations.progress(operation_id))


@bp.post("/retry/cancel/<operation_id>")
def retry_cancel(operation_id):
    try:
        retry.cancel(operation_id)
    except ApiError as exc:
        if exc.status != 409:
            raise
        if htmx:  # too late: show how it ended
            return fragments.bulk_panel(operation_id, notice=f"Not cancelled: {exc.message}.")
        # The original Docora answers 200 here too; ours says that nothing changed, and why.
        return jsonify(data={"message": "Cancellation requested", "changed": False,
                             "operation_status": exc.extra["operation_status"],
                             "detail": exc.message})
    if htmx:
        return fragments.bulk_panel(operation_id)
    return jsonify(data={"message": "Cancellation requested"})


@bp.get("/retry/estimate")
def retry_estimate():
    chosen = notification_list.parse_filter(request.args)
    if htmx:
        # Another tab (or user) started one meanwhile: show it rather than ask to confirm a
        # count that its reset is changing under us.
        running = operations.running_for_scope(chosen["app_id"])
        if running is not None:
            return fragments.bulk_panel(running["operation_id"], scope=chosen, note="busy")
        return fragments.bulk_panel(scope=chosen, confirm=True)
    return jsonify(data={"total": retry.estimate(
        chosen["app_id"], chosen["search"], chosen["failed_since"], chosen["failed_until"],
        chosen["cause"])})


@bp.get("/retry/operations")
def retry_operations():
    return jsonify(data=operations.recent_operations())


@bp.get("/retry/operations/<operation_id>")
def retry_operation(operation_id):
    """One operation with its outcome and a page of the links that failed again
    (?after=<cursor> for the next page)."""
    op = operations.progress(operation_id)
    after = request.args.get("after") or None
    if after is not None and not after.isdigit():
        raise ApiError(400, "after must be the next_cursor of a previous page")
    rows, cursor = operations.failed_again(operation_id, int(after) if after else None)
    return jsonify(data={**op, "failed_again": {
        "links": [{"app_id": r["app_id"], "app_name": r["app_name"],
                   "repository_id": r["repository_id"],
                   "repository": f"{r['owner']}/{r['name']}" if r["owner"] else None,
                   "error": r["error"], "http_status": r["http_status"],
                   "failed_at": r["finished_at"].isoformat(),
                   "current_status": r["current_status"]} for r in rows],
        "next_cursor": str(cursor) if cursor else None}})
