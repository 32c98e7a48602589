"""Delivery charts: /admin/charts (server-drawn SVG with a table twin) and its JSON twin
GET /admin/api/stats/deliveries?window=1h|1d|7d[&app_id=]. Read-only: every role may look."""
from flask import Blueprint, jsonify, render_template, request

from ..services.console import delivery_charts, delivery_stats

bp = Blueprint("charts", __name__)


@bp.get("/admin/charts")
def page():
    window, app_id = delivery_stats.parse_query(request.args)
    stats = delivery_stats.deliveries(window, app_id)
    apps = delivery_stats.app_choices()
    return render_template(
        "charts.html", stats=stats, apps=apps,
        app_name=next((a["app_name"] for a in apps if a["app_id"] == app_id), app_id),
        windows=list(delivery_stats.WINDOWS), frame=delivery_charts.geometry(),
        volume=delivery_charts.volume_chart(stats),
        latency=delivery_charts.latency_chart(stats),
        max_error_pct=round(delivery_stats.MAX_RELATIVE_ERROR * 100))


@bp.get("/admin/api/stats/deliveries")
def api():
    window, app_id = delivery_stats.parse_query(request.args)
    response = jsonify(data=delivery_stats.deliveries_json(window, app_id))
    response.headers["Cache-Control"] = "no-store"
    return response
