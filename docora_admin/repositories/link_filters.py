"""The one definition of "links matching a filter", shared by the lists, the estimate and the bulk
retry of a selection, so that the count next to a button counts what the button acts on.

A filter is an app, a search term and a failed-since range. A search matches a link when its app's
name, its repository's owner/name or its error text contains the term, case-insensitively; the term
is literal (LIKE wildcards are escaped).

Two ways to evaluate the search, same result: `matching` (indexed look-ups, for the lists and
their counts) and `conditions` (row by row, where rows are walked in an index order anyway: a
bulk retry's chunks).
"""
import re

from psycopg import sql

# A failed link that needs attention: failed and not dismissed (migration 023; a dismissed link
# keeps Docora's `failed` status and is listed apart).
FAILED = "ar.status = 'failed' AND ar.dismissed_at IS NULL"
# The statuses of each list view, as a condition on `ar` (constants).
VIEW_STATUS = {"failed": FAILED,
               "in_progress": "ar.status IN ('pending_snapshot', 'scanning')"}


def escape_like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_pattern(search):
    return f"%{escape_like(search)}%"


# The search as one condition on a link `ar`, evaluated row by row: used where rows are walked in
# an index order anyway (a bulk retry's chunks, the in-progress list). repositories.failed_links
# answers the same question for the failed list with indexed look-ups instead.
SEARCH_CONDITION = """
    AND (ar.last_error ILIKE %(pattern)s
         OR EXISTS (SELECT FROM apps a WHERE a.app_id = ar.app_id AND a.app_name ILIKE %(pattern)s)
         OR EXISTS (SELECT FROM repositories r WHERE r.repository_id = ar.repository_id
                    AND (r.owner || '/' || r.name) ILIKE %(pattern)s))
"""


def conditions(app_id=None, search=None, since=None, until=None, cause=None):
    """(SQL text, params): AND-conditions on a link `ar` for the given filter. The text is chosen
    from constants by which filters are present, never built from their values."""
    sql, params = [], {}
    if app_id:
        sql.append("AND ar.app_id = %(app_id)s")
        params["app_id"] = app_id
    if search:
        sql.append(SEARCH_CONDITION)
        params["pattern"] = search_pattern(search)
    if since is not None:
        sql.append("AND ar.updated_at >= %(since)s::timestamptz")
        params["since"] = since
    if until is not None:
        sql.append("AND ar.updated_at < %(until)s::timestamptz")
        params["until"] = until
    if cause:
        sql.append("AND ar.error_cause = %(cause)s")
        params["cause"] = cause
    return "\n".join(sql), params


def page(conn, links, sort_join, where, order, params):
    """One page of a list view with each link's app and repository. `links` is the FROM item
    named `ar` the page is chosen from (joined only to `sort_join`, the table the order needs),
    `where` its condition, `order` the ORDER BY; params hold limit and offset. The same ORDER BY
    twice: inside it picks the page's ids, outside it orders those rows (same aliases, same
    statement snapshot, so the same values)."""
    return conn.execute(sql.SQL("""
        SELECT ar.app_id, a.app_name, ar.repository_id, r.owner, r.name, r.github_url,
               ar.status, ar.last_error, ar.retry_count, ar.updated_at, ar.next_attempt_at,
               ar.retry_cause, ar.retry_operation_id, ar.last_scanned_at
        FROM (SELECT ar.id FROM {links} {sort_join} WHERE {where}
              ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s) page
        JOIN app_repositories ar ON ar.id = page.id
        JOIN apps a ON a.app_id = ar.app_id
        JOIN repositories r ON r.repository_id = ar.repository_id
        ORDER BY {order}
    """).format(links=links, sort_join=sort_join, where=where, order=order), params).fetchall()


def stream(conn, links, sort_join, where, order, params, batch_rows=2000):
    """Every link of a list view in the list's order, with the columns of `page`, read through a
    server-side cursor `batch_rows` at a time: an export of a million rows never holds more than
    one batch in this process. Same FROM item, condition and order as `page`. The connection is
    busy until the generator is exhausted or closed."""
    query = sql.SQL("""
        SELECT ar.app_id, a.app_name, ar.repository_id, r.owner, r.name, r.github_url,
               ar.status, ar.last_error, ar.retry_count, ar.updated_at, ar.next_attempt_at,
               ar.retry_cause, ar.retry_operation_id, ar.last_scanned_at
        FROM (SELECT ar.id FROM {links} {sort_join} WHERE {where}) chosen
        JOIN app_repositories ar ON ar.id = chosen.id
        JOIN apps a ON a.app_id = ar.app_id
        JOIN repositories r ON r.repository_id = ar.repository_id
        ORDER BY {order}
    """).format(links=links, sort_join=sort_join, where=where, order=order)
    # A named cursor lives in a transaction: the pooled connection (not autocommit) has one.
    with conn.cursor(name="docora_link_export") as cursor:
        cursor.itersize = batch_rows
        cursor.execute(query, params)
        yield from cursor


def scope(app_id, since, until, cause=None):
    """Conditions on `ar` for the app, the failed-since range and the error's cause (constants,
    chosen by which are present) as psycopg SQL."""
    return sql.SQL(" ").join(sql.SQL(text) for text, present in (
        ("AND ar.app_id = %(app_id)s", app_id),
        ("AND ar.error_cause = %(cause)s", cause),
        ("AND ar.updated_at >= %(since)s::timestamptz", since is not None),
        ("AND ar.updated_at < %(until)s::timestamptz", until is not None)) if present)


def _indexable(search):
    """Whether pg_trgm can narrow an ILIKE for `search`: it needs a run of three letters or
    digits to take a trigram from."""
    return re.search(r"[^\W_]{3}", search) is not None


def matching(view, app_id, search, since, until, columns, cause=None):
    """`columns` of the links of a list view (of one app, when app_id; status changed in
    [since, until)) whose app name, repository owner/name or error text contains %(pattern)s,
    each link once. The trigram and per-view partial indexes of migrations 005 and 008 serve
    the three look-ups."""
    status = sql.SQL(VIEW_STATUS[view])
    where = scope(app_id, since, until, cause)
    if not _indexable(search):
        # No trigram to look up: every row of the view is read whatever we do, and one
        # (parallel) pass over the join is cheaper than three.
        return sql.SQL("""
            SELECT {columns} FROM app_repositories ar
            JOIN apps a ON a.app_id = ar.app_id
            JOIN repositories r ON r.repository_id = ar.repository_id
            WHERE {status} {where}
              AND (a.app_name ILIKE %(pattern)s OR r.owner ILIKE %(pattern)s
                   OR r.name ILIKE %(pattern)s OR (r.owner || '/' || r.name) ILIKE %(pattern)s
                   OR ar.last_error ILIKE %(pattern)s)
        """).format(columns=columns, status=status, where=where)
    # Three indexed look-ups. `owner ILIKE p OR name ILIKE p` needs no branch of its own: p is
    # %literal%, and whatever contains the literal, its superstring owner || '/' || name
    # contains it too.
    return sql.SQL("""
        SELECT {columns} FROM app_repositories ar
        WHERE {status} {where} AND ar.last_error ILIKE %(pattern)s
        UNION
        SELECT {columns} FROM app_repositories ar JOIN apps a ON a.app_id = ar.app_id
        WHERE {status} {where} AND a.app_name ILIKE %(pattern)s
        UNION
        SELECT {columns} FROM app_repositories ar
        JOIN repositories r ON r.repository_id = ar.repository_id
        WHERE {status} {where} AND (r.owner || '/' || r.name) ILIKE %(pattern)s
    """).format(columns=columns, status=status, where=where)


def count_by_app(conn, view):
    """[{app_id, app_name, links}] for every app with links in this list view, by name."""
    if view == "failed":
        # The per-(cause, app) counts of failed, not dismissed links that migration 023's
        # triggers keep: a few hundred rows, whatever the number of failed links.
        return conn.execute("""
            SELECT a.app_id, a.app_name, f.n AS links
            FROM apps a
            JOIN (SELECT app_id, sum(links)::bigint AS n FROM failure_causes
                  GROUP BY app_id) f ON f.app_id = a.app_id
            WHERE f.n > 0
            ORDER BY a.app_name, a.app_id
        """).fetchall()
    # One index-only count per app on the view's small partial (app_id) index, instead of
    # grouping every row of the view fetched from the heap.
    return conn.execute(sql.SQL("""
        SELECT a.app_id, a.app_name, f.n AS links
        FROM apps a
        CROSS JOIN LATERAL (SELECT count(*) AS n FROM app_repositories ar
                            WHERE ar.app_id = a.app_id AND {status}) f
        WHERE f.n > 0
        ORDER BY a.app_name, a.app_id
    """).format(status=sql.SQL(VIEW_STATUS[view]))).fetchall()
