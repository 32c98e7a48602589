"""Reads of links in progress (queued, between attempts, or delivering) for the notifications
list's second view. Pages are chosen on the partial (next_attempt_at, id) index over
pending_snapshot and scanning links (migration 007), then joined for display; the filter is the
lists' one (repositories/link_filters.py)."""
from . import link_filters

STATUSES = "('pending_snapshot', 'scanning')"

# Whitelisted sort keys → ORDER BY expressions on the chosen page; every order ends on ar.id.
SORT_COLUMNS = {
    "next_attempt_at": "ar.next_attempt_at {dir} NULLS LAST, ar.id {dir}",
    "app_name": "a.app_name {dir}, ar.id {dir}",
    "repository": "r.owner {dir}, r.name {dir}, ar.id {dir}",
    "retry_count": "ar.retry_count {dir}, ar.id {dir}",
}
_SORT_JOINS = {
    "next_attempt_at": "",
    "app_name": "JOIN apps a ON a.app_id = ar.app_id",
    "repository": "JOIN repositories r ON r.repository_id = ar.repository_id",
    "retry_count": "",
}


def list_in_progress(conn, *, app_id, search, since, until, sort_by, descending, limit, offset):
    """One page of in-progress links with their app and repository."""
    where, params = link_filters.conditions(app_id, search, since, until)
    order = SORT_COLUMNS[sort_by].format(dir="DESC" if descending else "ASC")
    return conn.execute(f"""
        SELECT ar.app_id, a.app_name, ar.repository_id, r.owner, r.name, r.github_url,
               ar.status, ar.last_error, ar.retry_count, ar.updated_at, ar.next_attempt_at,
               ar.retry_cause, ar.retry_operation_id
        FROM (SELECT ar.id FROM app_repositories ar {_SORT_JOINS[sort_by]}
              WHERE ar.status IN {STATUSES} {where}
              ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s) page
        JOIN app_repositories ar ON ar.id = page.id
        JOIN apps a ON a.app_id = ar.app_id
        JOIN repositories r ON r.repository_id = ar.repository_id
        ORDER BY {order}
    """, {**params, "limit": limit, "offset": offset}).fetchall()


def count_in_progress(conn, *, app_id=None, search=None, since=None, until=None):
    """How many links in progress match the filter."""
    where, params = link_filters.conditions(app_id, search, since, until)
    return conn.execute(f"""
        SELECT count(*) AS n FROM app_repositories ar WHERE ar.status IN {STATUSES} {where}
    """, params).fetchone()["n"]
