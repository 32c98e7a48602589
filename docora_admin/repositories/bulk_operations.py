"""The bulk_operations table: durable record, cursor and counters of every bulk retry."""
import psycopg

ACTIVE = ("running", "cancelling")
_COLUMNS = """id, scope, app_id, requested_by, total, completed, succeeded, failed, skipped,
    delivered, delivery_failed, frozen_at, cursor_updated_at, cursor_link_id, chunk_size,
    status, cancel_requested, error, heartbeat_at, created_at, finished_at"""


class ScopeBusy(Exception):
    """Another bulk retry is already running for this scope."""


def insert_operation(conn, *, operation_id, scope, app_id, requested_by, chunk_size, total):
    """Create a running operation frozen at the transaction's now(); ScopeBusy if one runs.

    Call it inside an open transaction: it runs in a savepoint so that transaction survives
    the unique violation."""
    try:
        with conn.transaction():
            return conn.execute(f"""
                INSERT INTO bulk_operations (id, scope, app_id, requested_by, total, frozen_at,
                                             chunk_size)
                VALUES (%s, %s, %s, %s, %s, now(), %s)
                RETURNING {_COLUMNS}
            """, (operation_id, scope, app_id, requested_by, total, chunk_size)).fetchone()
    except psycopg.errors.UniqueViolation:
        raise ScopeBusy() from None


def delete_operation(conn, operation_id):
    conn.execute("DELETE FROM bulk_operations WHERE id = %s", (operation_id,))


def running_in_scope(conn, app_id):
    """The id of the active operation for this scope (app_id None = all apps), or None."""
    row = conn.execute("""
        SELECT id FROM bulk_operations
        WHERE status IN ('running', 'cancelling') AND coalesce(app_id, '*') = coalesce(%s, '*')
    """, (app_id,)).fetchone()
    return row["id"] if row else None


def get_operation(conn, operation_id, for_update=False):
    lock = " FOR UPDATE" if for_update else ""
    return conn.execute(f"SELECT {_COLUMNS} FROM bulk_operations WHERE id = %s{lock}",
                        (operation_id,)).fetchone()


def finish(conn, operation_id, status, error=None):
    """End the operation. Targets never reached because they left `failed` count as skipped;
    when cancelled, the rest simply stay failed and are not counted."""
    return conn.execute(f"""
        UPDATE bulk_operations
        SET status = %(status)s::varchar, error = %(error)s, finished_at = now(),
            heartbeat_at = now(),
            skipped = CASE WHEN %(status)s::varchar = 'completed'
                           THEN greatest(total - succeeded - failed, 0) ELSE skipped END,
            completed = CASE WHEN %(status)s::varchar = 'completed'
                             THEN greatest(total, succeeded + failed) ELSE completed END
        WHERE id = %(id)s
        RETURNING {_COLUMNS}
    """, {"id": operation_id, "status": status, "error": error}).fetchone()


def request_cancel(conn, operation_id):
    """Flag the operation for cancellation. Waits for an in-flight chunk (it holds the row lock),
    so once this returns no further chunk starts. Returns the row, or None for an unknown id."""
    return conn.execute(f"""
        UPDATE bulk_operations
        SET cancel_requested = true,
            status = CASE WHEN status = 'running' THEN 'cancelling' ELSE status END
        WHERE id = %s
        RETURNING {_COLUMNS}
    """, (operation_id,)).fetchone()


def record_delivery(conn, operation_id, delivered):
    column = "delivered" if delivered else "delivery_failed"
    conn.execute(f"UPDATE bulk_operations SET {column} = {column} + 1 WHERE id = %s",
                 (operation_id,))


def claim_stalled(conn, stall_seconds):
    """Active operations whose heartbeat stopped; their heartbeat is bumped so that only one
    resume is queued per stall."""
    rows = conn.execute("""
        UPDATE bulk_operations SET heartbeat_at = now()
        WHERE id IN (SELECT id FROM bulk_operations
                     WHERE status IN ('running', 'cancelling')
                       AND heartbeat_at < now() - make_interval(secs => %s)
                     FOR UPDATE SKIP LOCKED)
        RETURNING id
    """, (stall_seconds,)).fetchall()
    return [row["id"] for row in rows]


def list_recent(conn, limit=50, before=None):
    """Newest first."""
    return conn.execute(f"""
        SELECT {_COLUMNS} FROM bulk_operations
        WHERE (%(before)s::timestamptz IS NULL OR created_at < %(before)s)
        ORDER BY created_at DESC LIMIT %(limit)s
    """, {"limit": limit, "before": before}).fetchall()


def list_active(conn):
    return conn.execute(f"""
        SELECT {_COLUMNS} FROM bulk_operations WHERE status IN ('running', 'cancelling')
        ORDER BY created_at DESC
    """).fetchall()
