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


def reset_chunk(conn, op, after):
    """Reset the next chunk of a running bulk operation and advance it, as one statement: run
    in autocommit mode, it is also the chunk's whole transaction (one round trip per chunk).

    `op` holds the operation's id, app_id, frozen_at and chunk_size; `after` is the keyset
    cursor (updated_at, id) the caller last saw, or CURSOR_START. The statement locks the
    operation row and goes on only while the operation is running, not asked to cancel, and
    still at `after` (another runner may have moved it). The chunk is then the next chunk_size
    links failed at frozen_at after the cursor, oldest first (an index-only scan of the partial
    (updated_at, id) or (app_id, updated_at, id) index on failed links, migration 006). Those
    still failed are reset; the cursor moves past the whole chunk; succeeded and completed grow
    by the number reset.

    Returns (outcome, reset, cursor): outcome is "stopped" (the operation row did not qualify:
    re-read it), "done" (no target left) or "chunk"; reset is the [(app_id, repository_id)]
    reset; cursor is the chunk's last (updated_at, id). A link that left `failed` meanwhile is
    passed, not reset (it is counted as skipped when the operation finishes).
    """
    # `id = ANY(ARRAY(…))` walks the primary key for the chunk's ids; joined as UPDATE … FROM,
    # the planner hashes the whole table (150 ms per 1,000 rows).
    rows = conn.execute(f"""
        WITH op AS (
            SELECT id FROM bulk_operations
            WHERE id = %(operation_id)s AND status = 'running' AND NOT cancel_requested
              AND coalesce(cursor_updated_at, '-infinity') = %(after_updated_at)s::timestamptz
              AND coalesce(cursor_link_id, %(start_id)s::uuid) = %(after_id)s::uuid
            FOR UPDATE
        ), chunk AS MATERIALIZED (
            SELECT updated_at, id FROM app_repositories
            WHERE EXISTS (SELECT FROM op)
              AND status = 'failed' {_IN_SCOPE[op["app_id"] is not None]}
              AND updated_at <= %(frozen_at)s
              AND (updated_at, id) > (%(after_updated_at)s::timestamptz, %(after_id)s::uuid)
            ORDER BY updated_at, id
            LIMIT %(limit)s
        ), chunk_end AS (
            SELECT updated_at, id FROM chunk ORDER BY updated_at DESC, id DESC LIMIT 1
        ), reset AS (
            UPDATE app_repositories SET {_RESET}
            WHERE id = ANY(ARRAY(SELECT id FROM chunk)) AND status = 'failed'
            RETURNING app_id, repository_id
        ), advanced AS (
            UPDATE bulk_operations o
            SET succeeded = o.succeeded + reset_count.n, completed = o.completed + reset_count.n,
                cursor_updated_at = chunk_end.updated_at, cursor_link_id = chunk_end.id,
                heartbeat_at = now()
            FROM chunk_end, (SELECT count(*) AS n FROM reset) reset_count
            WHERE o.id = %(operation_id)s
        )
        SELECT EXISTS (SELECT FROM op) AS running, chunk_end.updated_at, chunk_end.id,
               reset.app_id, reset.repository_id
        FROM (SELECT) one
        LEFT JOIN chunk_end ON true
        LEFT JOIN reset ON true
    """, {"operation_id": op["id"], "app_id": op["app_id"], "frozen_at": op["frozen_at"],
          "after_updated_at": after[0], "after_id": after[1], "start_id": CURSOR_START[1],
          "limit": op["chunk_size"]}).fetchall()
    first = rows[0]
    if not first["running"]:
        return "stopped", [], after
    if first["id"] is None:
        return "done", [], after
    # A chunk with nothing left to reset still has its end: the LEFT JOIN gives one NULL row.
    reset = [(row["app_id"], row["repository_id"]) for row in rows if row["app_id"] is not None]
    return "chunk", reset, (first["updated_at"], first["id"])
