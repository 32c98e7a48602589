"""Apps and their links."""
from psycopg import sql

from . import link_filters

# Per app: its links (repository_count in the API) and its failed links; the apps page and the
# API count with this one subquery.
_LINK_COUNTS = """
    LEFT JOIN (SELECT app_id, count(*) AS links,
                      count(*) FILTER (WHERE status = 'failed' AND dismissed_at IS NULL)
                          AS failed
               FROM app_repositories GROUP BY app_id) c ON c.app_id = a.app_id
"""

# Whitelisted sort keys of the API's apps list → ORDER BY expressions (ties end on app_id).
APP_SORT_COLUMNS = {
    "app_name": sql.SQL("lower(a.app_name)"),
    "created_at": sql.SQL("a.created_at"),
    "repository_count": sql.SQL("coalesce(c.links, 0)"),
    "failed_notification_count": sql.SQL("coalesce(c.failed, 0)"),
}

# A search matches the app's name, id or webhook URL (case-insensitive substring).
_APP_SEARCH = sql.SQL(
    "(%(search)s = '' OR a.app_name ILIKE %(pattern)s OR a.app_id ILIKE %(pattern)s "
    "OR a.base_url ILIKE %(pattern)s)")


def page_of_apps(conn, search, sort_by, sort_order, limit, offset):
    """(rows, total): one page of apps matching `search`, each with links and failed (as
    list_apps_with_counts counts them), in `sort_by` (a key of APP_SORT_COLUMNS) order."""
    params = {"search": search, "pattern": link_filters.search_pattern(search),
              "limit": limit, "offset": offset}
    direction = sql.SQL("DESC") if sort_order == "desc" else sql.SQL("ASC")
    rows = conn.execute(sql.SQL("""
        SELECT a.app_id, a.app_name, a.base_url, a.created_at,
               coalesce(c.links, 0) AS links, coalesce(c.failed, 0) AS failed
        FROM apps a {counts}
        WHERE {search}
        ORDER BY {column} {direction}, a.app_id {direction}
        LIMIT %(limit)s OFFSET %(offset)s
    """).format(counts=sql.SQL(_LINK_COUNTS), search=_APP_SEARCH,
                column=APP_SORT_COLUMNS[sort_by], direction=direction), params).fetchall()
    total = conn.execute(sql.SQL("SELECT count(*) AS n FROM apps a WHERE {search}").format(
        search=_APP_SEARCH), params).fetchone()["n"]
    return rows, total


def app_with_counts(conn, app_id):
    """One app with everything the API's app detail counts: links and failed links (as the
    list counts them), snapshots of its repositories, and files delivered to it. None when
    there is no such app."""
    return conn.execute(sql.SQL("""
        SELECT a.app_id, a.app_name, a.base_url, a.email, a.website, a.description,
               a.created_at, coalesce(c.links, 0) AS links, coalesce(c.failed, 0) AS failed,
               (SELECT count(*) FROM repository_snapshots s
                JOIN app_repositories ar ON ar.repository_id = s.repository_id
                WHERE ar.app_id = a.app_id) AS snapshots,
               (SELECT count(*) FROM app_delivered_files f WHERE f.app_id = a.app_id)
                   AS delivered_files
        FROM apps a {counts}
        WHERE a.app_id = %s
    """).format(counts=sql.SQL(_LINK_COUNTS)), (app_id,)).fetchone()


def insert_app(conn, *, app_id, token_hash, app_name, base_url, email, website, description,
               client_auth_key_encrypted):
    """Insert a new app; return its created_at."""
    return conn.execute("""
        INSERT INTO apps (app_id, token_hash, app_name, base_url, email, website, description,
                          client_auth_key_encrypted)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING created_at
    """, (app_id, token_hash, app_name, base_url, email, website, description,
          client_auth_key_encrypted)).fetchone()["created_at"]


def count_repositories(conn):
    return conn.execute("SELECT count(*) AS n FROM repositories").fetchone()["n"]


def get_app(conn, app_id):
    return conn.execute(
        "SELECT app_id, app_name, base_url, email, website, description, created_at "
        "FROM apps WHERE app_id = %s", (app_id,)).fetchone()


def list_apps_with_counts(conn):
    """Every app with its number of links and of failed links."""
    return conn.execute(sql.SQL("""
        SELECT a.app_id, a.app_name, a.base_url, a.created_at,
               coalesce(c.links, 0) AS links, coalesce(c.failed, 0) AS failed
        FROM apps a {counts}
        ORDER BY a.app_name, a.app_id
    """).format(counts=sql.SQL(_LINK_COUNTS))).fetchall()


def list_app_links(conn, app_id, limit=500):
    """The app's links, failed first (dismissed ones after them), then by most recent status
    change."""
    return conn.execute("""
        SELECT ar.app_id, ar.repository_id, r.owner, r.name, r.github_url, ar.status,
               ar.retry_count, ar.last_error, ar.last_scanned_at, ar.updated_at,
               ar.next_attempt_at, ar.dismissed_at, ar.dismissed_by, ar.dismiss_reason
        FROM app_repositories ar JOIN repositories r ON r.repository_id = ar.repository_id
        WHERE ar.app_id = %s
        ORDER BY (ar.status = 'failed' AND ar.dismissed_at IS NULL) DESC,
                 (ar.status = 'failed') DESC, ar.updated_at DESC, ar.id
        LIMIT %s
    """, (app_id, limit)).fetchall()


def link_counts_by_status(conn):
    """{status: count} over all links."""
    rows = conn.execute(
        "SELECT status, count(*) AS n FROM app_repositories GROUP BY status").fetchall()
    return {row["status"]: row["n"] for row in rows}


def count_apps(conn):
    return conn.execute("SELECT count(*) AS n FROM apps").fetchone()["n"]


def get_link(conn, app_id, repository_id):
    """One link with its app and repository, and how many files the app has received."""
    return conn.execute("""
        SELECT ar.id, ar.app_id, a.app_name, ar.repository_id, r.owner, r.name, r.github_url,
               ar.status, ar.retry_count, ar.last_error, ar.updated_at, ar.last_scanned_at,
               ar.next_attempt_at, ar.retry_cause, ar.retry_operation_id, ar.created_at,
               ar.error_cause, ar.dismissed_at, ar.dismissed_by, ar.dismiss_reason,
               (SELECT count(*) FROM app_delivered_files f
                WHERE f.app_id = ar.app_id AND f.repository_id = ar.repository_id)
                   AS files_delivered
        FROM app_repositories ar
        JOIN apps a ON a.app_id = ar.app_id
        JOIN repositories r ON r.repository_id = ar.repository_id
        WHERE ar.app_id = %s AND ar.repository_id = %s
    """, (app_id, repository_id)).fetchone()

