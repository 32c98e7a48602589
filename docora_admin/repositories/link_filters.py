"""The one definition of "links matching a filter", shared by the lists, the estimate and the bulk
retry of a selection, so that the count next to a button counts what the button acts on.

A filter is an app, a search term and a failed-since range. A search matches a link when its app's
name, its repository's owner/name or its error text contains the term, case-insensitively; the term
is literal (LIKE wildcards are escaped).
"""


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


def conditions(app_id=None, search=None, since=None, until=None):
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
    return "\n".join(sql), params
