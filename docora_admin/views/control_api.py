"""Delivery control under /admin/api/: pause, resume and the circuit of an app, its limits,
pausing a bulk operation, and re-syncs. JSON for scripts; htmx gets the fragment of the UI piece
it drives (views/fragments.py)."""
from datetime import datetime

from flask import Blueprint, jsonify, make_response, render_template, request
from flask_login import current_user

from .. import request_guard
from ..errors import ApiError
from ..extensions import htmx
from ..services.control import delivery_control, repository_circuit
from ..services.retries import resync, retry
from . import fragments
from .api import _link_fields, _no_store, _on_link_page, request_fields

bp = Blueprint("control", __name__, url_prefix="/admin/api")
bp.after_request(_no_store)

MAX_RATE = 1_000_000
MAX_CONCURRENCY = 10_000


def delivery_json(state):
    """An app's delivery state with its times as ISO 8601."""
    return {key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in state.items()}


def _delivery_answer(app_id, message, **extra):
    state = delivery_control.state_of(app_id)
    if htmx:
        response = make_response(render_template("apps/_delivery.html", app_id=app_id,
                                                 delivery=state, notice=message))
        # The apps list reloads its table on this (its buttons swap nothing themselves).
        response.headers["HX-Trigger"] = "delivery-changed"
        return response
    return jsonify(data={"message": message, "app_id": app_id,
                         "delivery": delivery_json(state), **extra})


@bp.get("/apps/<app_id>/delivery")
def app_delivery(app_id):
    return jsonify(data={"app_id": app_id,
                         "delivery": delivery_json(delivery_control.state_of(app_id))})


@bp.post("/apps/<app_id>/pause")
def pause_app(app_id):
    delivery_control.pause_app(app_id, current_user.username)
    return _delivery_answer(app_id, "Deliveries paused")


@bp.post("/apps/<app_id>/resume")
def resume_app(app_id):
    _, released = delivery_control.resume_app(app_id)
    return _delivery_answer(app_id, f"Deliveries resumed: {released:,} queued", released=released)


@bp.post("/apps/<app_id>/circuit/close")
def close_circuit(app_id):
    _, released = delivery_control.close_circuit(app_id)
    return _delivery_answer(app_id, f"Circuit closed: {released:,} queued", released=released)


@bp.get("/repositories/<repository_id>/circuit")
def repository_circuit_state(repository_id):
    """The repository's git circuit (services/control/repository_circuit.describe)."""
    circuit = repository_circuit.existing_state(repository_id)
    return jsonify(data={"repository_id": repository_id,
                         "circuit": repository_circuit.circuit_json(circuit)})


@bp.post("/repositories/<repository_id>/circuit/close")
def close_repository_circuit(repository_id):
    """An operator closes a repository's git circuit: its count goes back to 0 and its waiting
    links are queued (audited). htmx gets the circuit's fragment (compact=1: the app page's
    cell)."""
    circuit, released = repository_circuit.close(repository_id)
    message = f"Repository circuit closed: {released:,} queued"
    if htmx:
        return render_template("partials/_repository_circuit.html", circuit=circuit,
                               compact=request.values.get("compact") == "1", notice=message)
    return jsonify(data={"message": message, "repository_id": repository_id,
                         "circuit": repository_circuit.circuit_json(circuit),
                         "released": released})


@bp.post("/apps/<app_id>/limits")
def set_limits(app_id):
    """{rate_per_second, max_concurrency}: a number, or empty / null for the default."""
    if request.is_json:
        body = request_guard.json_object_body()
    else:
        body = request_fields("rate_per_second", "max_concurrency")
    rate = _limit(body.get("rate_per_second"), "rate_per_second", float, MAX_RATE)
    concurrency = _limit(body.get("max_concurrency"), "max_concurrency", int, MAX_CONCURRENCY)
    delivery_control.set_limits(app_id, rate, concurrency)
    return _delivery_answer(app_id, "Limits saved")


def _limit(value, name, kind, maximum):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = None if isinstance(value, bool) else kind(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is not None and kind is int and isinstance(value, float) and value != number:
        number = None  # 2.5 connections is not a limit
    # `number != number` is NaN, which float() accepts.
    if number is None or number != number or not 0 < number <= maximum:
        raise ApiError(400, f"{name} must be a number above 0 and at most {maximum:,}, or empty "
                            "for the default")
    return number


@bp.post("/retry/pause/<operation_id>")
def pause_operation(operation_id):
    return _operation_changed(operation_id, retry.pause, "Pause requested")


@bp.post("/retry/resume/<operation_id>")
def resume_operation(operation_id):
    return _operation_changed(operation_id, retry.resume, "Resumed")


def _operation_changed(operation_id, change, message):
    try:
        op = change(operation_id)
    except ApiError as exc:
        if htmx and exc.status == 409:  # it moved on meanwhile: show where it is
            return fragments.bulk_panel(operation_id, notice=f"{exc.message}.")
        raise
    if htmx:
        return fragments.bulk_panel(operation_id)
    return jsonify(data={"message": message, "operation": op})


@bp.post("/resync")  # the original Docora's path
@bp.post("/links/resync")
def resync_link():
    app_id, repository_id = _link_fields()
    result = resync.resync_link(app_id, repository_id)
    if htmx:
        return fragments.followed_row(app_id, repository_id, as_status=_on_link_page(),
                                      acted=True)
    return jsonify(data={"message": "Re-sync queued", **result})


@bp.post("/resync/app/<app_id>")  # the original Docora's path
@bp.post("/apps/<app_id>/resync")
def resync_app(app_id):
    try:
        result = resync.start_app_resync(app_id, current_user.username)
    except ApiError as exc:
        if htmx and exc.status == 409 and exc.extra.get("operation_id"):
            return fragments.bulk_panel(exc.extra["operation_id"], note="busy")
        raise
    if htmx:
        return fragments.bulk_panel(result["operation_id"])
    return jsonify(data={"message": "Bulk re-sync started", **result})
