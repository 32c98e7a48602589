"""Apps and their links."""


def get_app(conn, app_id):
    return conn.execute(
        "SELECT app_id, app_name, base_url, email, website, description, created_at "
        "FROM apps WHERE app_id = %s", (app_id,)).fetchone()


def list_apps_with_counts(conn):
    """Every app with its number of links and of failed links."""
    return conn.execute("""
        SELECT a.app_id, a.app_name, a.base_url, a.created_at,
               coalesce(c.links, 0) AS links, coalesce(c.failed, 0) AS failed
        FROM apps a
        LEFT JOIN (SELECT app_id, count(*) AS links,
                          count(*) FILTER (WHERE status = 'failed') AS failed
                   FROM app_repositories GROUP BY app_id) c ON c.app_id = a.app_id
        ORDER BY a.app_name, a.app_id
    """).fetchall()


def list_app_links(conn, app_id, limit=500):
    """The app's links, failed first, then by most recent status change."""
    return conn.execute("""
        SELECT ar.app_id, ar.repository_id, r.owner, r.name, r.github_url, ar.status,
               ar.retry_count, ar.last_error, ar.last_scanned_at, ar.updated_at,
               ar.next_attempt_at
        FROM app_repositories ar JOIN repositories r ON r.repository_id = ar.repository_id
        WHERE ar.app_id = %s
        ORDER BY (ar.status = 'failed') DESC, ar.updated_at DESC, ar.id
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
               (SELECT count(*) FROM app_delivered_files f
                WHERE f.app_id = ar.app_id AND f.repository_id = ar.repository_id)
                   AS files_delivered
        FROM app_repositories ar
        JOIN apps a ON a.app_id = ar.app_id
        JOIN repositories r ON r.repository_id = ar.repository_id
        WHERE ar.app_id = %s AND ar.repository_id = %s
    """, (app_id, repository_id)).fetchone()

