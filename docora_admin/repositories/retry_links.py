"""Moving failed links back to pending_snapshot. Every reset is guarded by status = 'failed', so
a link is never retried twice and a link that left `failed` meanwhile is left alone."""

_RESET = """
    status = 'pending_snapshot', retry_count = 0, last_error = NULL
"""


def reset_failed_link(conn, app_id, repository_id):
    """Reset one failed link; return it, or None when it is missing or not failed."""
    return conn.execute(f"""
        UPDATE app_repositories SET {_RESET}
        WHERE app_id = %s AND repository_id = %s AND status = 'failed'
        RETURNING app_id, repository_id
    """, (app_id, repository_id)).fetchone()


def link_status(conn, app_id, repository_id):
    row = conn.execute(
        "SELECT status FROM app_repositories WHERE app_id = %s AND repository_id = %s",
        (app_id, repository_id)).fetchone()
    return row["status"] if row else None


# Scope filters are chosen from these constants, never built from input, so each scope gets a
# plan of its own instead of one generic plan with an "IS NULL OR" in it.
_IN_SCOPE = {True: "AND app_id = %(app_id)s", False: ""}

# Where a fresh operation's keyset cursor starts: before every row.
CURSOR_START = ("-infinity", "00000000-0000-0000-0000-000000000000")


def count_failed(conn, app_id=None):
    """Failed links in scope (all apps when app_id is None)."""
    return conn.execute(f"""
        SELECT count(*) AS n FROM app_repositories
        WHERE status = 'failed' {_IN_SCOPE[app_id is not None]}
    """, {"app_id": app_id}).fetchone()["n"]


def reset_next_chunk(conn, *, app_id, frozen_at, after_updated_at, after_id, limit):
    """Reset the next `limit` frozen targets after the keyset cursor, oldest first.

    Returns [{app_id, repository_id, updated_at, id}] where updated_at/id are the row's values
    before the reset, so the caller can move its cursor to the last one."""
    return conn.execute(f"""
        WITH chunk AS (
            SELECT id, updated_at FROM app_repositories
            WHERE status = 'failed' {_IN_SCOPE[app_id is not None]}
              AND updated_at <= %(frozen_at)s
              AND (updated_at, id) > (%(after_updated_at)s::timestamptz, %(after_id)s::uuid)
            ORDER BY updated_at, id
            LIMIT %(limit)s
            FOR UPDATE
        )
        UPDATE app_repositories ar SET {_RESET}
        FROM chunk
        WHERE ar.id = chunk.id AND ar.status = 'failed'
        RETURNING ar.app_id, ar.repository_id, chunk.updated_at AS cursor_updated_at,
                  chunk.id AS cursor_link_id
    """, {"app_id": app_id, "frozen_at": frozen_at, "after_updated_at": after_updated_at,
          "after_id": after_id, "limit": limit}).fetchall()
