"""Reads of links in progress (queued, between attempts, or delivering) for the notifications
list's second view. A page is chosen on app_repositories alone through the partial indexes on
in-progress links (migrations 007 and 008), then joined for display; a search is the lists'
indexed look-up (repositories/link_filters.matching)."""
from psycopg import sql

from . import link_filters

_IN_PROGRESS = sql.SQL(link_filters.VIEW_STATUS["in_progress"])

# Whitelisted sort keys → ORDER BY expressions; every order ends on ar.id. next_attempt_at has
# no NULLS clause so that both directions walk the (next_attempt_at, id) index.
SORT_COLUMNS = {
    "next_attempt_at": "ar.next_attempt_at {dir}, ar.id {dir}",
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
# What a search match carries: enough to order a page without going back to the table.
_MATCH_COLUMNS = sql.SQL(
    "ar.id, ar.app_id, ar.repository_id, ar.next_attempt_at, ar.retry_count")


def _links(app_id, search, since, until):
    """(FROM item named `ar`, WHERE condition, params): the in-progress links in scope."""
    params = {"since": since, "until": until, "app_id": app_id}
    if search:
        params["pattern"] = link_filters.search_pattern(search)
        return (sql.SQL("({}) ar").format(link_filters.matching(
            "in_progress", app_id, search, since, until, _MATCH_COLUMNS)), sql.SQL("true"),
            params)
    return (sql.SQL("app_repositories ar"),
            sql.SQL("{} {}").format(_IN_PROGRESS, link_filters.scope(app_id, since, until)),
            params)


def list_in_progress(conn, *, app_id, search, since, until, sort_by, descending, limit, offset):
    """One page of in-progress links with their app and repository."""
    links, where, params = _links(app_id, search, since, until)
    order = sql.SQL(SORT_COLUMNS[sort_by].format(dir="DESC" if descending else "ASC"))
    return link_filters.page(conn, links, sql.SQL(_SORT_JOINS[sort_by]), where, order,
                             {**params, "limit": limit, "offset": offset})


def stream_in_progress(conn, *, app_id, search, since, until, sort_by, descending):
    """Every in-progress link matching the filter, in the list's order, a batch at a time."""
    links, where, params = _links(app_id, search, since, until)
    order = sql.SQL(SORT_COLUMNS[sort_by].format(dir="DESC" if descending else "ASC"))
    return link_filters.stream(conn, links, sql.SQL(_SORT_JOINS[sort_by]), where, order, params)


def count_in_progress(conn, *, app_id=None, search=None, since=None, until=None):
    """How many links in progress match the filter."""
    links, where, params = _links(app_id, search, since, until)
    return conn.execute(sql.SQL("SELECT count(*) AS n FROM {} WHERE {}").format(links, where),
                        params).fetchone()["n"]
