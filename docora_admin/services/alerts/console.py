"""What the Alerts page and GET /admin/api/alerts show, and the operator's test alert."""
from urllib.parse import urlparse

from ... import db, runtime
from ...errors import ApiError
from ...repositories import alerts as alerts_repo
from ..team import audit
from . import changes, messages, sending

RECENT_LIMIT = 100


def channels():
    """The channels configured now, described for the page (no secret: the webhook's host only,
    the SMTP server and the recipients)."""
    settings = runtime.settings().alerts
    described = []
    if settings.webhook_url:
        described.append({"channel": "webhook",
                          "target": urlparse(settings.webhook_url).hostname})
    if settings.smtp_host:
        described.append({"channel": "email",
                          "target": f"{', '.join(settings.email_to)} via "
                                    f"{settings.smtp_host}:{settings.smtp_port}"})
    return described


def alert_json(row):
    """One alert as the JSON and the page show it."""
    alert = {**row, "alert_id": row["id"]}
    return {"id": row["id"], "kind": row["kind"], "title": messages.KIND_TITLES[row["kind"]],
            "subject": row["subject"], "state": row["state"], "at": row["created_at"],
            "due_at": row["due_at"], "message": messages.sentence(alert),
            "folded_into": row["folded_into"], "folded_changes": row["folded_count"],
            "facts": row["facts"], "deliveries": row["deliveries"]}


def recent(limit=RECENT_LIMIT):
    """The newest alerts, newest first."""
    with db.connection() as conn:
        return [alert_json(row) for row in alerts_repo.recent(conn, limit)]


def send_test(requested_by):
    """Record a test alert on every configured channel (audited) and queue the sender. Returns
    the alert as alert_json. Raises ApiError 409 when no channel is configured."""
    configured = runtime.settings().alerts.channels
    if not configured:
        raise ApiError(409, "No alert channel configured: set ALERT_WEBHOOK_URL or "
                            "ALERT_SMTP_HOST")
    with db.connection() as conn:
        row = changes.test_alert(conn, requested_by)
        audit.record(conn, "alert.test", target=str(row["id"]),
                     details={"alert_id": row["id"], "channels": list(configured)})
    sending.queue_after_commit()
    with db.connection() as conn:
        return alert_json(alerts_repo.get(conn, row["id"]))
