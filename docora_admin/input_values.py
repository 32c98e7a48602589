"""Checks of values a client sends, shared by the services below them: ids and times."""
from datetime import datetime, timezone

from .errors import ApiError

MAX_ID_LENGTH = 50  # app_id and repository_id are varchar(50)
_EARLIEST, _LATEST = (datetime(2000, 1, 1, tzinfo=timezone.utc),
                      datetime(2100, 1, 1, tzinfo=timezone.utc))


def valid_id(value):
    """Whether `value` can be an app or repository id (a short string without NUL)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and "\x00" not in value


def parse_time(raw, name):
    """An ISO 8601 date and time (UTC unless it names a zone); None for empty. ApiError 400
    naming the field otherwise."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or len(raw) > 40:
        raise ApiError(400, f"{name} must be a date and time like 2026-11-29T08:00")
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ApiError(400, f"{name} must be a date and time like 2026-11-29T08:00 "
                            "(UTC unless a zone is given)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if not _EARLIEST <= moment < _LATEST:
        raise ApiError(400, f"{name} must be between the years 2000 and 2099")
    return moment
