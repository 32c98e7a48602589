"""Jinja filters."""
from datetime import datetime, timezone


def timeago(moment, now=None):
    """'3 min ago', '2 h ago', '5 d ago' for a timezone-aware datetime."""
    if moment is None:
        return "—"
    now = now or datetime.now(timezone.utc)
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def init_app(app):
    app.add_template_filter(timeago)
