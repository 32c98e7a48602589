"""The bulk_operations table: durable record, cursor and counters of every bulk retry, and its
target list when it is a selection of links."""
import psycopg
from psycopg.types.json import Jsonb

# Not ended: the reset phase is under way or paused (a paused operation keeps its scope and its
# cursor, and is never resumed by the watchdog).
ACTIVE = ("running", "cancelling", "paused")
_COLUMNS = """id, kind, scope, app_id, requested_by, total, completed, succeeded, failed, skipped,
    delivered, delivery_failed, gone, frozen_at, cursor_updated_at, cursor_link_id, chunk_size,
    status, cancel_requested, error, heartbeat_at, created_at, finished_at, filter,
    outcome_changed_at, settled_at, paused_at, held, stalled_at, resumed_at, resumes, revision,
    extract(epoch FROM now() - heartbeat_at) AS heartbeat_age,
    kind = 'resync' OR coalesce(filter ?| array['links', 'failed_again_of'], false)
        AS walks_list"""


class ScopeBusy(Exception):
    """Another bulk retry is already running for this scope."""


def insert_operation(conn, *, operation_id, scope, app_id, requested_by, chunk_size, total,
                     filter=None, kind="retry"):
    """Create a running operation frozen at the transaction's now(); ScopeBusy if one runs for
    the same app (or for all apps when app_id is None).

    Call it inside an open transaction: it runs in a savepoint so that transaction survives
    the unique violation."""
    try:
        with conn.transaction():
            return conn.execute(f"""
                INSERT INTO bulk_operations (id, kind, scope, app_id, requested_by, total,
                                             frozen_at, chunk_size, filter)
                VALUES (%s, %s, %s, %s, %s, %s, now(), %s, %s)
                RETURNING {_COLUMNS}
            """, (operation_id, kind, scope, app_id, requested_by, total, chunk_size,
                  Jsonb(filter) if filter is not None else None)).fetchone()
    except psycopg.errors.UniqueViolation:
        raise ScopeBusy() from None


def set_total(conn, operation_id, total):
    conn.execute("UPDATE bulk_operations SET total = %s WHERE id = %s", (total, operation_id))


def insert_link_targets(conn, operation_id, links):
    """Freeze a selection given as [(app_id, repository_id)]: the links that exist and are failed
    now become the operation's targets. Returns how many."""
    return conn.execute("""
        INSERT INTO bulk_operation_targets (operation_id, link_id)
        SELECT DISTINCT %(operation_id)s, ar.id
        FROM unnest(%(app_ids)s::text[], %(repository_ids)s::text[]) AS t(app_id, repository_id)
        JOIN app_repositories ar
          ON ar.app_id = t.app_id AND ar.repository_id = t.repository_id
        WHERE ar.status = 'failed' AND ar.dismissed_at IS NULL
    """, {"operation_id": operation_id, "app_ids": [a for a, _ in links],
          "repository_ids": [r for _, r in links]}).rowcount


def insert_app_targets(conn, operation_id, app_id):
    """Freeze every link of an app (a re-sync's targets). Returns how many."""
    return conn.execute("""
        INSERT INTO bulk_operation_targets (operation_id, link_id)
        SELECT %s, id FROM app_repositories WHERE app_id = %s
    """, (operation_id, app_id)).rowcount


def count_failed_again(conn, source_operation_id):
    """Links that failed again (gave up) in an operation and are still failed."""
    return conn.execute("""
        SELECT count(*) AS n FROM delivery_attempts da
        JOIN app_repositories ar ON ar.id = da.link_id
        WHERE da.operation_id = %s AND da.link_status = 'failed' AND ar.status = 'failed'
          AND ar.dismissed_at IS NULL
    """, (source_operation_id,)).fetchone()["n"]


def insert_failed_again_targets(conn, operation_id, source_operation_id):
    """Freeze "the links that failed again in operation X" (and are still failed) as this
    operation's targets. Returns how many."""
    return conn.execute("""
        INSERT INTO bulk_operation_targets (operation_id, link_id)
        SELECT DISTINCT %s, da.link_id FROM delivery_attempts da
        JOIN app_repositories ar ON ar.id = da.link_id
        WHERE da.operation_id = %s AND da.link_status = 'failed' AND ar.status = 'failed'
          AND ar.dismissed_at IS NULL
    """, (operation_id, source_operation_id)).rowcount


def delete_operation(conn, operation_id):
    conn.execute("DELETE FROM bulk_operations WHERE id = %s", (operation_id,))


def running_in_scope(conn, app_id):
    """The id of the active operation for this scope (app_id None = all apps), or None."""
    row = conn.execute("""
        SELECT id FROM bulk_operations
        WHERE status IN ('running', 'cancelling', 'paused')
          AND coalesce(app_id, '*') = coalesce(%s, '*')
    """, (app_id,)).fetchone()
    return row["id"] if row else None


def get_operation(conn, operation_id, for_update=False):
    lock = " FOR UPDATE" if for_update else ""
    return conn.execute(f"SELECT {_COLUMNS} FROM bulk_operations WHERE id = %s{lock}",
                        (operation_id,)).fetchone()


def finish(conn, operation_id, status, error=None):
    """End the operation's reset phase. Targets never reached because they left `failed` count
    as skipped; when cancelled, the rest simply stay failed and are not counted. An operation
    that reset nothing has nothing to wait for: it is settled at once."""
    return conn.execute(f"""
        UPDATE bulk_operations
        SET status = %(status)s::varchar, error = %(error)s, finished_at = now(),
            heartbeat_at = now(),
            skipped = CASE WHEN %(status)s::varchar = 'completed'
                           THEN greatest(total - succeeded - failed, 0) ELSE skipped END,
            completed = CASE WHEN %(status)s::varchar = 'completed'
                             THEN greatest(total, succeeded + failed) ELSE completed END,
            settled_at = CASE WHEN succeeded = 0 THEN now() ELSE settled_at END
        WHERE id = %(id)s
        RETURNING {_COLUMNS}
    """, {"id": operation_id, "status": status, "error": error}).fetchone()


def end_for_deleted_app(conn, app_id, error):
    """End every active operation scoped to `app_id` as cancelled with `error` (its app is
    being deleted in the caller's transaction). Waits for an in-flight chunk (its row lock), so
    no further chunk of them starts. Returns the ended rows."""
    ids = [row["id"] for row in conn.execute(
        "SELECT id FROM bulk_operations WHERE app_id = %s AND status IN ('running', "
        "'cancelling', 'paused') FOR UPDATE", (app_id,)).fetchall()]
    ended = []
    for operation_id in ids:
        conn.execute("UPDATE bulk_operations SET cancel_requested = true WHERE id = %s",
                     (operation_id,))
        ended.append(finish(conn, operation_id, "cancelled", error))
    return ended


def request_cancel(conn, operation_id):
    """Flag a running operation for cancellation. Waits for an in-flight chunk (it holds the row
    lock), so once this returns no further chunk starts. A paused operation has no task to stop:
    it ends cancelled here. Returns (row, changed): the row as it is now (None for an unknown id)
    and whether it was still active. An ended operation is left exactly as it is."""
    row = conn.execute(f"""
        UPDATE bulk_operations
        SET cancel_requested = true,
            status = CASE WHEN status = 'running' THEN 'cancelling' ELSE status END
        WHERE id = %s AND status IN ('running', 'cancelling', 'paused')
        RETURNING {_COLUMNS}
    """, (operation_id,)).fetchone()
    if row is None:
        return get_operation(conn, operation_id), False
    if row["status"] == "paused":
        row = finish(conn, operation_id, "cancelled")
    return row, True


def request_pause(conn, operation_id):
    """Pause a running operation after its current chunk (this waits for the chunk's row lock;
    the chunk statement only goes on while the operation is running). Returns (row, changed)."""
    row = conn.execute(f"""
        UPDATE bulk_operations SET status = 'paused', paused_at = now()
        WHERE id = %s AND status = 'running' AND NOT cancel_requested
        RETURNING {_COLUMNS}
    """, (operation_id,)).fetchone()
    if row is not None:
        return row, True
    return get_operation(conn, operation_id), False


def resume(conn, operation_id):
    """Resume a paused operation from its cursor (the caller queues its task). Its heartbeat
    starts now, so should the task be lost the watchdog resumes it after the stall window.
    Returns (row, changed)."""
    row = conn.execute(f"""
        UPDATE bulk_operations SET status = 'running', paused_at = NULL, heartbeat_at = now()
        WHERE id = %s AND status = 'paused'
        RETURNING {_COLUMNS}
    """, (operation_id,)).fetchone()
    if row is not None:
        return row, True
    return get_operation(conn, operation_id), False


def claim_stalled(conn, stall_seconds):
    """Active operations whose heartbeat stopped; their heartbeat is bumped so that only one
    resume is queued per stall, and the stall is recorded (from its last heartbeat)."""
    rows = conn.execute("""
        UPDATE bulk_operations
        SET heartbeat_at = now(), stalled_at = heartbeat_at, resumed_at = now(),
            resumes = resumes + 1
        WHERE id IN (SELECT id FROM bulk_operations
                     WHERE status IN ('running', 'cancelling')
                       AND heartbeat_at < now() - make_interval(secs => %s)
                     FOR UPDATE SKIP LOCKED)
        RETURNING id
    """, (stall_seconds,)).fetchall()
    return [row["id"] for row in rows]


def list_unsettled(conn, limit=100):
    """Operations whose reset links may still be in progress, oldest first."""
    return conn.execute(f"""
        SELECT {_COLUMNS} FROM bulk_operations
        WHERE settled_at IS NULL ORDER BY created_at LIMIT %s
    """, (limit,)).fetchall()


def ended_episodes(conn, operation_id):
    """{delivered, failed_again}: links this operation reset whose episode has ended, counted
    from the attempt log (migration 007's partial index answers it alone)."""
    return conn.execute("""
        SELECT count(*) FILTER (WHERE link_status = 'synced') AS delivered,
               count(*) FILTER (WHERE link_status = 'failed') AS failed_again
        FROM delivery_attempts
        WHERE operation_id = %s AND link_status IN ('synced', 'failed')
    """, (operation_id,)).fetchone()


def links_in_progress(conn, operation_id):
    """Links of this operation's episodes that have not ended, counted from the links
    themselves (a walk of the in-progress index): the exact check behind settling."""
    return conn.execute("""
        SELECT count(*) AS n FROM app_repositories
        WHERE status IN ('pending_snapshot', 'scanning') AND retry_operation_id = %s
    """, (operation_id,)).fetchone()["n"]


# Why a pending link is held, in the order the claim decides it (the app's control row first).
HELD_REASONS = ("app_paused", "app_circuit_open", "app_waiting", "repository_circuit_open")


def held_links(conn, operation_id):
    """The links this operation reset that wait while something holds them, per app and reason:
    rows {app_id, app_name, reason, links, until} (until: the next probe, the end of the app's
    wait, the repository circuit's end; None for a pause). A walk of the in-progress index."""
    return conn.execute("""
        WITH held AS (
            SELECT ar.app_id,
                   CASE WHEN c.paused_at IS NOT NULL THEN 'app_paused'
                        WHEN c.circuit_opened_at IS NOT NULL THEN 'app_circuit_open'
                        WHEN c.deferred_until > now() THEN 'app_waiting'
                        ELSE 'repository_circuit_open' END AS reason,
                   CASE WHEN c.paused_at IS NOT NULL THEN NULL
                        WHEN c.circuit_opened_at IS NOT NULL THEN c.probe_at
                        WHEN c.deferred_until > now() THEN c.deferred_until
                        ELSE r.circuit_open_until END AS until
            FROM app_repositories ar
            JOIN repositories r ON r.repository_id = ar.repository_id
            LEFT JOIN app_delivery_control c ON c.app_id = ar.app_id
            WHERE ar.status = 'pending_snapshot' AND ar.retry_operation_id = %s
              AND (c.paused_at IS NOT NULL OR c.circuit_opened_at IS NOT NULL
                   OR c.deferred_until > now() OR r.circuit_open_until > now())
        )
        SELECT held.app_id, a.app_name, held.reason, count(*) AS links, min(held.until) AS until
        FROM held LEFT JOIN apps a ON a.app_id = held.app_id
        GROUP BY held.app_id, a.app_name, held.reason
        ORDER BY count(*) DESC, held.app_id
    """, (operation_id,)).fetchall()


def save_outcome(conn, operation_id, delivered, failed_again, gone, settle, held=None):
    """Store the outcome counters and the held summary; `settle` marks the operation settled
    (and clears held). Returns the row."""
    return conn.execute(f"""
        UPDATE bulk_operations
        SET outcome_changed_at = CASE WHEN (delivered, delivery_failed, gone)
                                           IS DISTINCT FROM (%(d)s, %(f)s, %(g)s)
                                      THEN now() ELSE outcome_changed_at END,
            delivered = %(d)s, delivery_failed = %(f)s, gone = %(g)s,
            held = CASE WHEN %(settle)s THEN NULL ELSE %(held)s::jsonb END,
            settled_at = CASE WHEN %(settle)s THEN coalesce(settled_at, now())
                              ELSE settled_at END
        WHERE id = %(id)s
        RETURNING {_COLUMNS}
    """, {"id": operation_id, "d": delivered, "f": failed_again, "g": gone,
          "settle": settle, "held": Jsonb(held) if held is not None else None}).fetchone()


def failed_again_page(conn, operation_id, after_id=None, limit=50):
    """The links this operation reset that failed again, in the order they ended; keyset paged
    by attempt id. Each row has the link's current status."""
    return conn.execute("""
        SELECT da.id AS attempt_id, da.app_id, da.repository_id, da.finished_at, da.error,
               da.http_status, a.app_name, r.owner, r.name, ar.status AS current_status
        FROM delivery_attempts da
        LEFT JOIN apps a ON a.app_id = da.app_id
        LEFT JOIN repositories r ON r.repository_id = da.repository_id
        LEFT JOIN app_repositories ar ON ar.id = da.link_id
        WHERE da.operation_id = %(id)s AND da.link_status = 'failed'
          AND da.id > coalesce(%(after)s, 0)
        ORDER BY da.id LIMIT %(limit)s
    """, {"id": operation_id, "after": after_id, "limit": limit}).fetchall()


def list_recent(conn, limit=50, before=None):
    """Newest first."""
    return conn.execute(f"""
        SELECT {_COLUMNS} FROM bulk_operations
        WHERE (%(before)s::timestamptz IS NULL OR created_at < %(before)s)
        ORDER BY created_at DESC LIMIT %(limit)s
    """, {"limit": limit, "before": before}).fetchall()


def list_active(conn):
    return conn.execute(f"""
        SELECT {_COLUMNS} FROM bulk_operations
        WHERE status IN ('running', 'cancelling', 'paused')
        ORDER BY created_at DESC
    """).fetchall()
