"""Moving failed links back to pending_snapshot. Every reset is guarded by status = 'failed', so
a link is never retried twice and a link that left `failed` meanwhile is left alone.

A reset starts a delivery episode: it bumps the link's job generation (only a job queued for that
generation may claim it), records what started the episode (retry_cause, retry_operation_id) and
makes the link due now. The statement returns the generation and the statement's time in
microseconds ("stamp"), which the caller uses as the queued job's place in the queue, so the
sweeper can tell a job still waiting from one that was lost (services/jobs/sweeper.py).
"""
from . import job_outbox, link_filters

# updated_at is set here, not by the status trigger: its WHEN clause then skips the plpgsql call,
# which is a third of the cost of a 1,000-row chunk.
_RESET = """
    status = 'pending_snapshot', retry_count = 0, last_error = NULL, updated_at = now(),
    next_attempt_at = now(), job_generation = job_generation + 1
"""
STAMP = "(extract(epoch FROM now()) * 1000000)::bigint"
_NOTE = job_outbox.NOTE_CTE.format(stamp=STAMP, rows="reset")


def reset_failed_link(conn, app_id, repository_id):
    """Reset one failed link (a single retry); return what to queue ({app_id, repository_id,
    retry_operation_id (None), job_generation, stamp}), or None when it is missing or not
    failed."""
    return conn.execute(f"""
        UPDATE app_repositories
        SET {_RESET}, retry_cause = 'retry', retry_operation_id = NULL
        WHERE app_id = %s AND repository_id = %s AND status = 'failed'
        RETURNING app_id, repository_id, retry_operation_id, job_generation, {STAMP} AS stamp
    """, (app_id, repository_id)).fetchone()


def link_status(conn, app_id, repository_id):
    row = conn.execute(
        "SELECT status FROM app_repositories WHERE app_id = %s AND repository_id = %s",
        (app_id, repository_id)).fetchone()
    return row["status"] if row else None


# Where a fresh operation's keyset cursor starts: before every row.
CURSOR_START = ("-infinity", "00000000-0000-0000-0000-000000000000")


def filter_of(op):
    """The filter keyword arguments (link_filters.conditions) of an operation row."""
    chosen = op.get("filter") or {}
    return {"app_id": op["app_id"], "search": chosen.get("search") or None,
            "since": chosen.get("failed_since"), "until": chosen.get("failed_until"),
            "cause": chosen.get("cause") or None}


def _walk_filter(op):
    """The chunk source of an operation over a filter: the next chunk_size links failed at
    frozen_at and matching, oldest first after the cursor. Without a search or range this is an
    index-only scan of the partial (updated_at, id) or (app_id, updated_at, id) index on failed
    links (migration 006)."""
    where, params = link_filters.conditions(**filter_of(op))
    return f"""
        SELECT ar.updated_at, ar.id FROM app_repositories ar
        WHERE EXISTS (SELECT FROM op)
          AND ar.status = 'failed' AND ar.dismissed_at IS NULL {where}
          AND ar.updated_at <= %(frozen_at)s
          AND (ar.updated_at, ar.id) > (%(after_updated_at)s::timestamptz, %(after_id)s::uuid)
        ORDER BY ar.updated_at, ar.id
        LIMIT %(limit)s
    """, params


_WALK_LIST = """
    SELECT NULL::timestamptz AS updated_at, t.link_id AS id FROM bulk_operation_targets t
    WHERE EXISTS (SELECT FROM op) AND t.operation_id = %(operation_id)s
      AND t.link_id > %(after_id)s::uuid
    ORDER BY t.link_id
    LIMIT %(limit)s
"""


def reset_chunk(conn, op, after):
    """Reset the next chunk of a running bulk operation and advance it, as one statement: run
    in autocommit mode, it is also the chunk's whole transaction (one round trip per chunk).

    `op` holds the operation's id, app_id, filter, frozen_at, chunk_size and whether it walks a
    target list; `after` is the keyset cursor (updated_at, id) the caller last saw, or
    CURSOR_START. The statement locks the operation row and goes on only while the operation is
    running, not asked to cancel, and still at `after` (another runner may have moved it). The
    chunk is the next chunk_size targets after the cursor: failed links matching the operation's
    filter in (updated_at, id) order, or the operation's target list in link id order. Those
    still failed (and failed at frozen_at) are reset; the cursor moves past the whole chunk;
    succeeded and completed grow by the number reset.

    Returns (outcome, reset, cursor, stamp, mark): outcome is "stopped" (the operation row did
    not qualify: re-read it), "done" (no target left) or "chunk"; reset is the [(app_id,
    repository_id, job_generation)] reset; cursor is the chunk's last (updated_at, id); stamp is
    the statement's time in microseconds; mark the job outbox mark written with the reset links
    (None when none was reset), which the push clears. A link that left `failed` meanwhile is
    passed, not reset (it is counted as skipped when the operation finishes).
    """
    if op["walks_list"]:
        walk, params = _WALK_LIST, {}
    else:
        walk, params = _walk_filter(op)
    if op.get("kind") == "resync":
        # A re-sync delivers every file again: the link is reset whatever its status, except
        # while a job is delivering it (that link is passed and counted as skipped), and what
        # the app was recorded to have is forgotten in the same statement.
        guard, cause = "status <> 'scanning'", "resync"
        clear = """, cleared AS (
            DELETE FROM app_delivered_files f USING reset
            WHERE f.app_id = reset.app_id AND f.repository_id = reset.repository_id)"""
    else:
        # A link dismissed meanwhile is passed like one that left `failed`.
        guard, cause, clear = ("status = 'failed' AND dismissed_at IS NULL "
                               "AND updated_at <= %(frozen_at)s"), "bulk", ""
    # `id = ANY(ARRAY(…))` walks the primary key for the chunk's ids; joined as UPDATE … FROM,
    # the planner hashes the whole table (150 ms per 1,000 rows).
    rows = conn.execute(f"""
        WITH op AS (
            SELECT id FROM bulk_operations
            WHERE id = %(operation_id)s AND status = 'running' AND NOT cancel_requested
              AND coalesce(cursor_updated_at, '-infinity') = %(after_updated_at)s::timestamptz
              AND coalesce(cursor_link_id, %(start_id)s::uuid) = %(after_id)s::uuid
            FOR UPDATE
        ), chunk AS MATERIALIZED ({walk}
        ), chunk_end AS (
            SELECT updated_at, id FROM chunk ORDER BY updated_at DESC NULLS LAST, id DESC LIMIT 1
        ), reset AS (
            UPDATE app_repositories SET {_RESET},
                retry_cause = '{cause}', retry_operation_id = %(operation_id)s
            WHERE id = ANY(ARRAY(SELECT id FROM chunk)) AND {guard}
            RETURNING app_id, repository_id, job_generation
        ){clear}, noted AS (
            {_NOTE}
        ), advanced AS (
            UPDATE bulk_operations o
            SET succeeded = o.succeeded + reset_count.n, completed = o.completed + reset_count.n,
                cursor_updated_at = chunk_end.updated_at, cursor_link_id = chunk_end.id,
                heartbeat_at = now()
            FROM chunk_end, (SELECT count(*) AS n FROM reset) reset_count
            WHERE o.id = %(operation_id)s
        )
        SELECT EXISTS (SELECT FROM op) AS running, chunk_end.updated_at, chunk_end.id,
               {STAMP} AS stamp, (SELECT id FROM noted) AS mark,
               reset.app_id, reset.repository_id, reset.job_generation
        FROM (SELECT) one
        LEFT JOIN chunk_end ON true
        LEFT JOIN reset ON true
    """, {**params, "operation_id": op["id"], "frozen_at": op["frozen_at"],
          "after_updated_at": after[0], "after_id": after[1], "start_id": CURSOR_START[1],
          "limit": op["chunk_size"]}).fetchall()
    first = rows[0]
    if not first["running"]:
        return "stopped", [], after, None, None
    if first["id"] is None:
        return "done", [], after, None, None
    # A chunk with nothing left to reset still has its end: the LEFT JOIN gives one NULL row.
    reset = [(row["app_id"], row["repository_id"], row["job_generation"])
             for row in rows if row["app_id"] is not None]
    return ("chunk", reset, (first["updated_at"] or CURSOR_START[0], first["id"]),
            first["stamp"], first["mark"])


def cursor_of(op):
    """The keyset cursor an operation row has reached."""
    return (op["cursor_updated_at"] or CURSOR_START[0], op["cursor_link_id"] or CURSOR_START[1])
