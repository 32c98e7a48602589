"""The audit trail: /admin/audit (filters, keyset pages) and GET /admin/api/audit."""
from flask import Blueprint, jsonify, render_template, request

from ..services.team import accounts, audit

bp = Blueprint("audit", __name__)


@bp.get("/admin/audit")
def page():
    chosen = audit.parse_filter(request.args)
    rows, cursor = audit.events_page(**chosen)
    return render_template("audit.html", events=rows, next_cursor=cursor, chosen=chosen,
                           args={k: v for k, v in request.args.items()
                                 if k in ("actor", "action", "since", "until") and v},
                           usernames=[a["username"] for a in accounts.list_accounts()],
                           actions=audit.KNOWN_ACTIONS)


@bp.get("/admin/api/audit")
def api():
    """?actor=&action=&since=&until=&before=<next_cursor>; newest first, 50 a page."""
    rows, cursor = audit.events_page(**audit.parse_filter(request.args))
    response = jsonify(data=[audit.event_json(row) for row in rows],
                       next_cursor=str(cursor) if cursor else None)
    response.headers["Cache-Control"] = "no-store"
    return response
