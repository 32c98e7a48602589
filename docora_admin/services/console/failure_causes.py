"""Failed links grouped by cause (the causes page and GET /admin/api/notifications/causes), and
the Dismissed view. The filter is the failed list's (services/console/notification_list.py):
the count of a group is the number of links "Retry this group" would act on with that filter.
"""
import math

from ... import db
from ...repositories import failure_causes as causes_repo
from . import list_params

DISMISSED_PAGE_SIZE = 50


def groups(chosen):
    """[{cause, count, apps [{app_id, app_name, count}], first_seen, last_seen}] of the failed,
    not dismissed links matching `chosen` (notification_list.parse_filter's result), most links
    first. first_seen / last_seen: when the oldest and the newest of them failed."""
    with db.connection() as conn:
        rows = causes_repo.grouped(conn, app_id=chosen["app_id"], search=chosen["search"],
                                   since=chosen["failed_since"], until=chosen["failed_until"])
    if chosen.get("cause"):
        rows = [row for row in rows if row["cause"] == chosen["cause"]]
    return [{"cause": row["cause"], "count": row["links"], "apps": row["apps"],
             "first_seen": row["first_seen"], "last_seen": row["last_seen"]} for row in rows]


def group_json(group):
    return {**group, "first_seen": group["first_seen"].isoformat(),
            "last_seen": group["last_seen"].isoformat()}


def dismissed_page(args):
    """A page of dismissed links (latest dismissal first) from list query args (page, limit,
    app_id): {rows, pagination}."""
    common = list_params.parse({k: v for k, v in args.items() if k in ("page", "limit")},
                               ("dismissed_at",), "dismissed_at", "desc")
    app_id = (args.get("app_id") or "").strip() or None
    offset = (common.page - 1) * common.limit
    with db.connection() as conn:
        total = causes_repo.count_dismissed(conn, app_id)
        rows = causes_repo.list_dismissed(conn, common.limit, offset, app_id) \
            if offset < total else []
    return {"rows": rows, "pagination": {
        "page": common.page, "limit": common.limit, "total": total,
        "total_pages": max(1, math.ceil(total / common.limit))}}


def dismissed_row_json(row):
    return {"app_id": row["app_id"], "app_name": row["app_name"],
            "repository_id": row["repository_id"],
            "repository": f"{row['owner']}/{row['name']}", "status": "failed",
            "last_error": row["last_error"], "cause": row["error_cause"],
            "retry_count": row["retry_count"], "updated_at": row["updated_at"].isoformat(),
            "dismissed": {"at": row["dismissed_at"].isoformat(), "by": row["dismissed_by"],
                          "reason": row["dismiss_reason"]}}


def compact_summary():
    """Merge the failure_causes rows writers added side by side (a periodic task): the grouped
    view reads one row per cause and app again. Returns how many rows went."""
    with db.connection() as conn:
        return causes_repo.compact(conn)


def count_dismissed():
    with db.connection() as conn:
        return causes_repo.count_dismissed(conn)
