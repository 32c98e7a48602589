"""The reads the original Docora dashboard makes under /admin/api/ (DOCORA_CONTRACT.md §2):
overview, apps, one app, the queue. Its shapes, its names; what we add are more fields. Thin:
parse, call a service, wrap the answer in `data`."""
from flask import Blueprint, current_app, flash, jsonify, request, url_for

from ..extensions import htmx
from ..roles import requires_role
from ..services import app_deletion, apps, overview
from .api import _no_store

bp = Blueprint("dashboard_api", __name__, url_prefix="/admin/api")
bp.after_request(_no_store)


@bp.get("/overview")
def overview_numbers():
    return jsonify(data=overview.overview_json())


@bp.get("/apps")
def apps_list():
    return jsonify(data=apps.list_page(request.args))


@bp.get("/apps/<app_id>")
def app_detail(app_id):
    return jsonify(data=apps.detail(app_id))


@bp.delete("/apps/<app_id>")
@requires_role("admin", refused="delete apps")
def delete_app(app_id):
    """The original's deletion. The console's dialog (htmx) sends the app's name as typed
    (confirm_name): it must match, and the answer sends the browser to the apps list."""
    result = app_deletion.delete_app(
        app_id, confirm_name=request.values.get("confirm_name", "") if htmx else None)
    if htmx:
        flash(_deleted_message(result), "info")
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = url_for("pages.apps")
        return response
    return jsonify(data=result)


def _deleted_message(result):
    links, orphaned = result["repositories_unlinked"], result["orphaned_repositories_cleaned"]
    message = (f"{result['app_name']} deleted with its {links:,} repository "
               f"link{'' if links == 1 else 's'}")
    if orphaned:
        message += (f"; {orphaned:,} repositor{'y' if orphaned == 1 else 'ies'} no other app "
                    "followed removed too")
    return message + "."


@bp.get("/queue")
def queue():
    return jsonify(data=overview.queue_json())
