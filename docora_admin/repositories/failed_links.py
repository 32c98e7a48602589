"""Reads of failed (app, repository) links for the failed-notifications list."""
from psycopg import sql

# Whitelisted sort keys → ORDER BY expressions. Every order ends on ar.id so pages are stable.
SORT_COLUMNS = {
    "updated_at": [sql.SQL("ar.updated_at")],
    "app_name": [sql.SQL("a.app_name")],
    "repository": [sql.SQL("r.owner"), sql.SQL("r.name")],
    "retry_count": [sql.SQL("ar.retry_count")],
}


def _escape_like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(app_id, search):
    clauses = [sql.SQL("ar.status = 'failed'")]
    params = {}
    if app_id:
        clauses.append(sql.SQL("ar.app_id = %(app_id)s"))
        params["app_id"] = app_id
    if search:
        clauses.append(sql.SQL(
            "(a.app_name ILIKE %(pattern)s OR r.owner ILIKE %(pattern)s OR r.name ILIKE %(pattern)s"
            " OR (r.owner || '/' || r.name) ILIKE %(pattern)s OR ar.last_error ILIKE %(pattern)s)"))
        params["pattern"] = f"%{_escape_like(search)}%"
    return sql.SQL(" AND ").join(clauses), params


_FROM = sql.SQL("""
    FROM app_repositories ar
    JOIN apps a ON a.app_id = ar.app_id
    JOIN repositories r ON r.repository_id = ar.repository_id
""")


def list_failed(conn, *, app_id, search, sort_by, descending, limit, offset):
    """One page of failed links with their app and repository."""
    where, params = _where(app_id, search)
    direction = sql.SQL("DESC") if descending else sql.SQL("ASC")
    order = sql.SQL(", ").join(
        sql.SQL("{} {}").format(col, direction)
        for col in SORT_COLUMNS[sort_by] + [sql.SQL("ar.id")])
    query = sql.SQL("""
        SELECT ar.app_id, a.app_name, ar.repository_id, r.owner, r.name, r.github_url,
               ar.status, ar.last_error, ar.retry_count, ar.updated_at
        {from_} WHERE {where} ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s
    """).format(from_=_FROM, where=where, order=order)
    params.update(limit=limit, offset=offset)
    return conn.execute(query, params).fetchall()


def count_failed(conn, *, app_id, search):
    """How many failed links match the filter."""
    where, params = _where(app_id, search)
    if not search:
        # No join needed: the (app_id, status) / status indexes answer this alone.
        query = sql.SQL("SELECT count(*) AS n FROM app_repositories ar WHERE {where}").format(
            where=where)
    else:
        query = sql.SQL("SELECT count(*) AS n {from_} WHERE {where}").format(
            from_=_FROM, where=where)
    return conn.execute(query, params).fetchone()["n"]


def failed_count_by_app(conn):
    """[(app_id, app_name, failed)] for every app with at least one failed link, by name."""
    return conn.execute("""
        SELECT a.app_id, a.app_name, f.n AS failed
        FROM (SELECT app_id, count(*) AS n FROM app_repositories
              WHERE status = 'failed' GROUP BY app_id) f
        JOIN apps a ON a.app_id = f.app_id
        ORDER BY a.app_name, a.app_id
    """).fetchall()
