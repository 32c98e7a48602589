"""Alerts: the /admin/alerts page, its "Send a test alert" button, and the JSON twins
GET /admin/api/alerts and POST /admin/api/alerts/test."""
from datetime import datetime

from flask import Blueprint, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user

from .. import runtime
from ..extensions import htmx
from ..services.alerts import console
from .api import _no_store

bp = Blueprint("alerts", __name__)


def _page_context(notice=None):
    settings = runtime.settings().alerts
    return {"alerts": console.recent(), "channels": console.channels(), "notice": notice,
            "cooldown_minutes": settings.cooldown_minutes,
            "rise_count": settings.failed_rise_count,
            "rise_minutes": settings.failed_rise_minutes}


@bp.get("/admin/alerts")
def page():
    return render_template("alerts/list.html", **_page_context())


@bp.post("/admin/alerts/test")
def send_test():
    """The page's button: the fragment for htmx, else back to the page with a flash."""
    alert = console.send_test(current_user.username)
    notice = f"Test alert {alert['id']} queued on {_channels_text(alert)}."
    if htmx:
        return render_template("alerts/_alerts.html", **_page_context(notice))
    flash(notice, "success")
    return redirect(url_for("alerts.page"))


def _channels_text(alert):
    return " and ".join(d["channel"] for d in alert["deliveries"])


def _json(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value


api = Blueprint("alerts_api", __name__, url_prefix="/admin/api")
api.after_request(_no_store)


@api.get("/alerts")
def list_alerts():
    """{data: [alert], channels: [{channel, target}]}, newest first (100 at most)."""
    return jsonify(data=_json(console.recent()), channels=console.channels())


@api.post("/alerts/test")
def test_alert():
    """201 {data: alert} (its deliveries pending), 409 when no channel is configured."""
    alert = console.send_test(current_user.username)
    return jsonify(data=_json(alert)), 201
