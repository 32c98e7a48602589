"""Moving failed links back to pending_snapshot. Every reset is guarded by status = 'failed', so
a link is never retried twice and a link that left `failed` meanwhile is left alone."""

# updated_at is set here, not by the status trigger: its WHEN clause then skips the plpgsql call,
# which is a third of the cost of a 1,000-row chunk. The snapshot job is queued right after the
# reset, so the scheduler leaves the link alone for a while (it re-queues only a lost job).
_RESET = """
    status = 'pending_snapshot', retry_count = 0, last_error = NULL, updated_at = now(),
    next_attempt_at = now() + interval '10 minutes'
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


def next_chunk(conn, *, app_id, frozen_at, after_updated_at, after_id, limit):
    """The next `limit` frozen targets after the keyset cursor, oldest first: [{id, updated_at}].

    An index-only scan of (status, updated_at, id) or (app_id, status, updated_at, id)."""
    return conn.execute(f"""
        SELECT id, updated_at FROM app_repositories
        WHERE status = 'failed' {_IN_SCOPE[app_id is not None]}
          AND updated_at <= %(frozen_at)s
          AND (updated_at, id) > (%(after_updated_at)s::timestamptz, %(after_id)s::uuid)
        ORDER BY updated_at, id
        LIMIT %(limit)s
    """, {"app_id": app_id, "frozen_at": frozen_at, "after_updated_at": after_updated_at,
          "after_id": after_id, "limit": limit}).fetchall()


def reset_links(conn, link_ids):
    """Reset those of `link_ids` that are still failed; return their (app_id, repository_id).

    A separate statement from next_chunk on purpose: joined in one UPDATE … FROM, the planner
    hashes the whole table (150 ms per 1,000 rows); `id = ANY(…)` walks the primary key."""
    return conn.execute(f"""
        UPDATE app_repositories SET {_RESET}
        WHERE id = ANY(%s) AND status = 'failed'
        RETURNING app_id, repository_id
    """, (link_ids,)).fetchall()
