"""The reads the original Docora dashboard makes under /admin/api/ (DOCORA_CONTRACT.md §2):
overview, apps, one app, the queue. Its shapes, its names; what we add are more fields. Thin:
parse, call a service, wrap the answer in `data`."""
from flask import Blueprint, jsonify, request

from ..services import apps, overview
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


@bp.get("/queue")
def queue():
    return jsonify(data=overview.queue_json())
