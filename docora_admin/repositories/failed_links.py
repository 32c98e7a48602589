"""Reads of failed (app, repository) links for the failed-notifications list.

Shaped for 100,000 failed links among a million (bench/failed_list.py measures it; the indexes
are in migrations 005 and 006):
- a page is chosen on app_repositories alone (joined only to the table its sort key lives in),
  and only its rows are joined for display, so a deep OFFSET walks a narrow index instead of
  joining every skipped row;
- a search is the UNION of three indexed look-ups (error text, app name, repository owner/name;
  trigram indexes) instead of five ILIKEs evaluated on every failed row of a three-table join
  (which stays for terms too short to have a trigram).
Both keep the results of the plain join: app_id and repository_id are NOT NULL foreign keys, so
every link has exactly one app and one repository.
"""
from psycopg import sql

from . import link_filters

# Whitelisted sort keys → ORDER BY expressions. Every order ends on ar.id so pages are stable.
SORT_COLUMNS = {
    "updated_at": [sql.SQL("ar.updated_at")],
    "app_name": [sql.SQL("a.app_name")],
    "repository": [sql.SQL("r.owner"), sql.SQL("r.name")],
    "retry_count": [sql.SQL("ar.retry_count")],
    # The original Docora admin API's keys (DOCORA_CONTRACT.md §2).
    "repository_name": [sql.SQL("r.name")],
    "last_scanned_at": [sql.SQL("ar.last_scanned_at")],
}

# The table a sort key needs joined while the page is chosen.
_SORT_JOINS = {
    "updated_at": sql.SQL(""),
    "app_name": sql.SQL("JOIN apps a ON a.app_id = ar.app_id"),
    "repository": sql.SQL("JOIN repositories r ON r.repository_id = ar.repository_id"),
    "retry_count": sql.SQL(""),
    "repository_name": sql.SQL("JOIN repositories r ON r.repository_id = ar.repository_id"),
    "last_scanned_at": sql.SQL(""),
}


# What a search match carries: enough to order a page without going back to the table.
_MATCH_COLUMNS = sql.SQL("ar.id, ar.app_id, ar.repository_id, ar.updated_at, ar.retry_count, "
                         "ar.last_scanned_at")


def _matching(app_id, search, since=None, until=None, columns=_MATCH_COLUMNS, cause=None):
    """`columns` of the failed links (of one app, when app_id; failed in [since, until)) whose
    app name, repository owner/name or error text contains %(pattern)s, each link once."""
    return link_filters.matching("failed", app_id, search, since, until, columns, cause)


def _params(app_id, search, since=None, until=None, cause=None):
    params = {"since": since, "until": until, "cause": cause}
    if app_id:
        params["app_id"] = app_id
    if search:
        params["pattern"] = link_filters.search_pattern(search)
    return params


def _failed_links(app_id, search, since=None, until=None, cause=None):
    """(FROM item named `ar`, WHERE condition): the failed (not dismissed) links in scope, with
    at least the columns a page is ordered by."""
    if search:
        return (sql.SQL("({}) ar").format(_matching(app_id, search, since, until,
                                                    cause=cause)),
                sql.SQL("true"))
    return sql.SQL("app_repositories ar"), sql.SQL("{} {}").format(
        sql.SQL(link_filters.FAILED), link_filters.scope(app_id, since, until, cause))


def _order(sort_by, descending):
    direction = sql.SQL("DESC") if descending else sql.SQL("ASC")
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(col, direction)
        for col in SORT_COLUMNS[sort_by] + [sql.SQL("ar.id")])


def list_failed(conn, *, app_id, search, sort_by, descending, limit, offset, since=None,
                until=None, cause=None):
    """One page of failed links with their app and repository."""
    order = _order(sort_by, descending)
    links, where = _failed_links(app_id, search, since, until, cause)
    params = _params(app_id, search, since, until, cause)
    params.update(limit=limit, offset=offset)
    return link_filters.page(conn, links, _SORT_JOINS[sort_by], where, order, params)


def stream_failed(conn, *, app_id, search, sort_by, descending, since=None, until=None,
                  cause=None):
    """Every failed link matching the filter, in the list's order, a batch at a time."""
    links, where = _failed_links(app_id, search, since, until, cause)
    return link_filters.stream(conn, links, _SORT_JOINS[sort_by], where,
                               _order(sort_by, descending),
                               _params(app_id, search, since, until, cause))


def count_failed(conn, *, app_id, search, since=None, until=None, cause=None):
    """How many failed (not dismissed) links match the filter."""
    if search:
        query = sql.SQL("SELECT count(*) AS n FROM ({}) matching").format(
            _matching(app_id, search, since, until, sql.SQL("ar.id"), cause))
    elif since is None and until is None:
        # Without a range, the per-(cause, app) counts migration 023's triggers keep in the
        # same transactions as the links answer it: a few hundred rows instead of an index
        # scan of every failed link.
        query = sql.SQL("""
            SELECT coalesce(sum(f.links), 0)::bigint AS n FROM failure_causes f
            WHERE true {app} {cause}
        """).format(app=sql.SQL("AND f.app_id = %(app_id)s" if app_id else ""),
                    cause=sql.SQL("AND f.cause = %(cause)s" if cause else ""))
    else:
        # The partial failed-link indexes count every failed link in the range index-only;
        # the few dismissed ones (their own small index) are taken off.
        where = link_filters.scope(app_id, since, until, cause)
        query = sql.SQL("""
            SELECT (SELECT count(*) FROM app_repositories ar
                    WHERE ar.status = 'failed' {where})
                 - (SELECT count(*) FROM app_repositories ar
                    WHERE ar.status = 'failed' AND ar.dismissed_at IS NOT NULL {where}) AS n
        """).format(where=where)
    return conn.execute(query, _params(app_id, search, since, until, cause)).fetchone()["n"]
