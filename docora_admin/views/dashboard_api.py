"""The reads the original Docora dashboard makes under /admin/api/ (DOCORA_CONTRACT.md §2):
overview, apps, one app, the queue. Its shapes, its names; what we add are more fields. Thin:
parse, call a service, wrap the answer in `data`."""
from flask import (Blueprint, current_app, flash, jsonify, make_response, render_template,
                   request, url_for)

from ..extensions import htmx
from ..roles import requires_role
from ..services.apps import app_deletion, onboarding
from ..services.console import apps, overview
from .api import _no_store, request_body

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


@bp.post("/apps/onboard")
@requires_role("admin", refused="onboard apps")
def onboard_app():
    """The original's onboarding: 201 with the app id and token, shown this once. The
    original sends them bare and the contract inside `data`: both are here. htmx (the
    console's form) gets the credentials card instead."""
    created = onboarding.onboard(request_body())
    if htmx:
        return render_template("apps/_onboarded.html", created=created), 201
    answer = {key: created[key] for key in ("app_id", "token", "created_at")}
    return make_response(jsonify(data=answer, **answer), 201)


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
