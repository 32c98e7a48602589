"""Failures grouped by cause and dismissal: the causes page (/admin/causes), the Dismissed view
(/admin/dismissed) and their JSON twins, and POST /admin/api/links/dismiss | undismiss (JSON for
scripts; htmx gets the piece of UI it drives). Thin: parse, call a service, shape the answer."""
from flask import Blueprint, jsonify, make_response, render_template, request
from flask_login import current_user

from .. import request_guard
from ..extensions import htmx
from ..services.console import failure_causes, links, notification_list
from ..services.retries import dismissal
from . import fragments

bp = Blueprint("causes", __name__)

_DISMISSED_PARAMS = ("page", "limit", "app_id")


@bp.after_request
def _no_store(response):
    if request.path.startswith("/admin/api/"):
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("HX-Request")
    return response


@bp.get("/admin/causes")
def page():
    chosen = notification_list.parse_filter(request.args)
    scope = {key: chosen[key] for key in ("app_id", "search", "failed_since", "failed_until")}
    query = notification_list.ListQuery(
        app_id=chosen["app_id"] or "", search=chosen["search"] or "",
        failed_since=chosen["failed_since"], failed_until=chosen["failed_until"])
    return render_template("causes/list.html", groups=failure_causes.groups(chosen),
                           chosen=chosen, query=query,
                           apps=notification_list.apps_for_filter("failed", chosen["app_id"]),
                           panel=fragments.page_panel(scope),
                           dismissed=failure_causes.count_dismissed())


@bp.get("/admin/api/notifications/causes")
def causes_json():
    notification_list.refuse_unknown(request.args, notification_list.FILTER_PARAMS)
    chosen = notification_list.parse_filter(request.args)
    return jsonify(data=[failure_causes.group_json(g) for g in failure_causes.groups(chosen)])


@bp.get("/admin/dismissed")
def dismissed():
    return render_template("causes/dismissed.html",
                           page=failure_causes.dismissed_page(request.args))


@bp.get("/admin/api/notifications/dismissed")
def dismissed_json():
    notification_list.refuse_unknown(request.args, _DISMISSED_PARAMS)
    page = failure_causes.dismissed_page(request.args)
    return jsonify(data={"data": [failure_causes.dismissed_row_json(r) for r in page["rows"]],
                         "pagination": page["pagination"]})


def _body():
    if request.is_json:
        return request_guard.json_object_body()
    return {name: request.form.get(name) for name in request.form if name != "csrf_token"}


@bp.post("/admin/api/links/dismiss")
def dismiss():
    chosen = dismissal.parse(_body(), reason_required=True)
    result = dismissal.dismiss(chosen, current_user.username)
    return _changed(chosen, result, f"Dismissed {result['dismissed']:,}")


@bp.post("/admin/api/links/undismiss")
def undismiss():
    chosen = dismissal.parse(_body(), reason_required=False)
    result = dismissal.undismiss(chosen, current_user.username)
    return _changed(chosen, result, f"Undismissed {result['undismissed']:,}")


def _changed(chosen, result, message):
    if not htmx:
        return jsonify(data={"message": message, **result})
    if request.headers.get("HX-Target") == "link-dismissal":
        link = links.load(chosen["app_id"], chosen["repository_id"])
        response = make_response(render_template("links/_dismissal.html", link=link))
    else:
        response = make_response(render_template("causes/_changed.html", message=message,
                                                 result=result, chosen=chosen))
    # Lists, counts and the bulk panel on the page refresh themselves.
    response.headers["HX-Trigger"] = "counts-changed"
    return response
