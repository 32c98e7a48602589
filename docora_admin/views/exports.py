"""Exports of the notifications lists under /admin/api/: CSV for a spreadsheet and its JSON
Lines twin for scripts, for the filter and sort of the list (every page), streamed."""
import itertools
from datetime import datetime, timezone

from flask import Blueprint, current_app, request

from .. import export_format, runtime
from ..errors import ApiError
from ..services.console import notification_list
from .api import list_row_json

bp = Blueprint("exports", __name__, url_prefix="/admin/api")

# The columns of an export, in order; the JSON Lines twin carries the same fields.
EXPORT_COLUMNS = ("app_id", "app_name", "repository_id", "repository", "github_url", "status",
                  "state", "state_text", "last_error", "retry_count", "updated_at",
                  "next_attempt_at")
EXPORT_FORMATS = ("csv", "jsonl")


@bp.get("/notifications/failed.<file_format>")
def failed(file_format):
    """The failed list for the filter and sort given, as a file (see _export)."""
    return _export("failed", file_format)


@bp.get("/notifications/in-progress.<file_format>")
def in_progress(file_format):
    """The in-progress view for the filter and sort given, as a file (see _export)."""
    return _export("in_progress", file_format)


def _export(view, file_format):
    """Every link of the list for the filter and sort given (no paging), streamed as CSV or
    JSON Lines: a million rows pass through a batch at a time."""
    if file_format not in EXPORT_FORMATS:
        raise ApiError(404, f"No such export: use .{' or .'.join(EXPORT_FORMATS)}")
    notification_list.refuse_unknown(request.args, notification_list.EXPORT_PARAMS)
    query = notification_list.parse_query({**request.args.to_dict(), "view": view})
    rows = notification_list.export_rows(query, runtime.settings().max_retry_attempts)
    # The first row is read here, so that a database outage is still a 503, not a cut download.
    first = next(rows, None)
    records = (list_row_json(row) for row in itertools.chain([first] if first else [], rows))
    if file_format == "csv":
        body, mimetype = export_format.csv_lines(records, EXPORT_COLUMNS), "text/csv"
    else:
        body, mimetype = export_format.json_lines(records), "application/x-ndjson"
    response = current_app.response_class(body, mimetype=mimetype)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="docora-{view.replace("_", "-")}-{stamp}.{file_format}"')
    response.headers["Cache-Control"] = "no-store"
    return response
