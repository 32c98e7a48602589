"""The app_delivery_control table: whether an app's deliveries are held (paused, circuit open,
deferred by the app), its failure streak and its limits; and the links a release queues again.

An app without a row has never been paused or failed: nothing holds it, and it has the default
limits. Rows are created on first need (upserts).
"""
from .retry_links import STAMP

# Whether a control row holds its app's deliveries; the circuit's probe is the exception the
# caller makes (take_probe).
HELD = "(c.paused_at IS NOT NULL OR c.deferred_until > now() OR c.circuit_opened_at IS NOT NULL)"

_COLUMNS = """app_id, paused_at, paused_by, consecutive_failures, last_error, last_failure_at,
    circuit_opened_at, probe_at, probe_failures, deferred_until, rate_per_second,
    max_concurrency, updated_at, deferred_until > now() AS deferred"""


def get(conn, app_id):
    """The app's control row, or None (never paused, never failed, default limits)."""
    return conn.execute(f"SELECT {_COLUMNS} FROM app_delivery_control WHERE app_id = %s",
                        (app_id,)).fetchone()


def for_apps(conn, app_ids):
    """{app_id: control row} for the apps that have one."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM app_delivery_control WHERE app_id = ANY(%s)",
                        (list(app_ids),)).fetchall()
    return {row["app_id"]: row for row in rows}


def held_apps(conn):
    """Every app whose deliveries are held now, with its row and its app name."""
    return conn.execute(f"""
        SELECT {", ".join("c." + c.strip() for c in _COLUMNS.split(",")[:-1])},
               c.deferred_until > now() AS deferred, a.app_name
        FROM app_delivery_control c JOIN apps a ON a.app_id = c.app_id
        WHERE {HELD}
        ORDER BY a.app_name, c.app_id
    """).fetchall()


def pause(conn, app_id, paused_by):
    """Hold the app's deliveries. Returns the row, or None when the app does not exist."""
    return conn.execute(f"""
        INSERT INTO app_delivery_control (app_id, paused_at, paused_by)
        SELECT app_id, now(), %(by)s FROM apps WHERE app_id = %(app_id)s
        ON CONFLICT (app_id) DO UPDATE
        SET paused_at = coalesce(app_delivery_control.paused_at, now()),
            paused_by = CASE WHEN app_delivery_control.paused_at IS NULL THEN %(by)s
                             ELSE app_delivery_control.paused_by END,
            updated_at = now()
        RETURNING {_COLUMNS}
    """, {"app_id": app_id, "by": paused_by}).fetchone()


def resume(conn, app_id):
    """End an operator's pause. Returns the row, or None when there was no row."""
    return conn.execute(f"""
        UPDATE app_delivery_control SET paused_at = NULL, paused_by = NULL, updated_at = now()
        WHERE app_id = %s RETURNING {_COLUMNS}
    """, (app_id,)).fetchone()


def close_circuit(conn, app_id):
    """Close the app's circuit (a delivered attempt, or an operator) and forget its streak and
    any deferral. Returns the row as it was before (None: no row), so the caller knows whether
    anything was held."""
    return conn.execute(f"""
        WITH before AS (SELECT {_COLUMNS} FROM app_delivery_control WHERE app_id = %(app_id)s
                        FOR UPDATE),
        closed AS (
            UPDATE app_delivery_control
            SET circuit_opened_at = NULL, probe_at = NULL, probe_failures = 0,
                consecutive_failures = 0, deferred_until = NULL, updated_at = now()
            WHERE app_id = %(app_id)s
        )
        SELECT * FROM before
    """, {"app_id": app_id}).fetchone()


# A delivered attempt ends the app's failure streak and closes its circuit: CTEs `before` (the
# app's row as it was, when there was something to reset: a healthy app's row is not touched
# per job) and `streak_ended`, for the statement that ends a delivered attempt
# (snapshot_links.mark_synced), taking %(app_id)s; {condition} adds to before's WHERE.
STREAK_ENDED = f"""
    before AS (
        SELECT {_COLUMNS} FROM app_delivery_control
        WHERE app_id = %(app_id)s
          AND (consecutive_failures > 0 OR circuit_opened_at IS NOT NULL) {{condition}}
        FOR UPDATE
    ), streak_ended AS (
        UPDATE app_delivery_control c
        SET circuit_opened_at = NULL, probe_at = NULL, probe_failures = 0,
            consecutive_failures = 0, updated_at = now()
        FROM before WHERE c.app_id = before.app_id
    )
"""


def record_failed(conn, app_id, error, threshold, probe_seconds, probe_max_seconds,
                  was_probe=False):
    """One more failed attempt in the app's streak. At `threshold` in a row the circuit opens
    (first probe after probe_seconds). A failed probe pushes the next one out, doubling up to
    probe_max_seconds; an attempt that was already under way when the circuit opened only adds
    to the streak. Returns the row after, with `opened` true when this failure opened it."""
    return conn.execute(f"""
        INSERT INTO app_delivery_control AS c (app_id, consecutive_failures, last_error,
                                               last_failure_at)
        SELECT app_id, 1, %(error)s, now() FROM apps WHERE app_id = %(app_id)s
        ON CONFLICT (app_id) DO UPDATE
        SET consecutive_failures = c.consecutive_failures + 1, last_error = %(error)s,
            last_failure_at = now(), updated_at = now(),
            probe_failures = CASE WHEN c.circuit_opened_at IS NOT NULL AND %(probe)s
                                  THEN c.probe_failures + 1 ELSE c.probe_failures END,
            probe_at = CASE
                WHEN c.circuit_opened_at IS NOT NULL AND %(probe)s
                    THEN now() + make_interval(secs => least(
                        %(probe_max)s, %(probe_s)s * power(2, least(c.probe_failures + 1, 20))))
                WHEN c.circuit_opened_at IS NULL AND c.consecutive_failures + 1 >= %(threshold)s
                    THEN now() + make_interval(secs => %(probe_s)s)
                ELSE c.probe_at END,
            circuit_opened_at = CASE
                WHEN c.circuit_opened_at IS NULL AND c.consecutive_failures + 1 >= %(threshold)s
                    THEN now() ELSE c.circuit_opened_at END
        RETURNING {_COLUMNS}, (circuit_opened_at = now()) AS opened
    """, {"app_id": app_id, "error": error, "threshold": threshold, "probe_s": probe_seconds,
          "probe_max": probe_max_seconds, "probe": was_probe}).fetchone()


def defer(conn, app_id, seconds):
    """The app asked us to wait `seconds`: hold its deliveries until then (a later deferral never
    shortens an earlier one)."""
    return conn.execute(f"""
        INSERT INTO app_delivery_control AS c (app_id, deferred_until)
        SELECT app_id, now() + make_interval(secs => %(s)s) FROM apps WHERE app_id = %(app_id)s
        ON CONFLICT (app_id) DO UPDATE
        SET deferred_until = greatest(c.deferred_until, excluded.deferred_until),
            updated_at = now()
        RETURNING {_COLUMNS}
    """, {"app_id": app_id, "s": seconds}).fetchone()


def take_probe(conn, app_id, probe_seconds, probe_max_seconds):
    """Take the open circuit's probe slot if it is due (and nothing else holds the app); the
    next slot is a probe interval away (the probe's failure pushes it further, its success
    closes the circuit). Returns True when taken."""
    return conn.execute("""
        UPDATE app_delivery_control
        SET probe_at = now() + make_interval(secs => least(
                %(probe_max)s, %(probe)s * power(2, least(probe_failures, 20)))),
            updated_at = now()
        WHERE app_id = %(app_id)s AND circuit_opened_at IS NOT NULL AND probe_at <= now()
          AND paused_at IS NULL AND coalesce(deferred_until, '-infinity') <= now()
        RETURNING app_id
    """, {"app_id": app_id, "probe": probe_seconds,
          "probe_max": probe_max_seconds}).fetchone() is not None


def set_limits(conn, app_id, rate_per_second, max_concurrency):
    """Per-app limits (None: the setting's default). Returns the row, or None for no app."""
    return conn.execute(f"""
        INSERT INTO app_delivery_control AS c (app_id, rate_per_second, max_concurrency)
        SELECT app_id, %(rate)s, %(concurrency)s FROM apps WHERE app_id = %(app_id)s
        ON CONFLICT (app_id) DO UPDATE
        SET rate_per_second = %(rate)s, max_concurrency = %(concurrency)s, updated_at = now()
        RETURNING {_COLUMNS}
    """, {"app_id": app_id, "rate": rate_per_second, "concurrency": max_concurrency}).fetchone()


def end_expired_deferrals(conn):
    """Apps whose Retry-After has passed: clear it and return their ids (to be released)."""
    rows = conn.execute("""
        UPDATE app_delivery_control SET deferred_until = NULL, updated_at = now()
        WHERE deferred_until <= now()
        RETURNING app_id
    """).fetchall()
    return [row["app_id"] for row in rows]


def due_probe_links(conn):
    """For each open circuit whose probe is due (and nothing else holds the app), its oldest due
    pending link, to be queued as the probe. Its generation is kept: the job it had was dropped
    at the claim, so the new one is its only live job, and pushing it again on the next tick (the
    queue may be long) only adds a duplicate that finds nothing to claim."""
    return conn.execute(f"""
        SELECT ar.app_id, ar.repository_id, ar.retry_operation_id, ar.job_generation,
               {STAMP} AS stamp
        FROM app_delivery_control c
        CROSS JOIN LATERAL (
            SELECT * FROM app_repositories ar
            WHERE ar.app_id = c.app_id AND ar.status = 'pending_snapshot'
              AND (ar.next_attempt_at IS NULL OR ar.next_attempt_at <= now())
            ORDER BY ar.next_attempt_at, ar.id LIMIT 1) ar
        WHERE c.circuit_opened_at IS NOT NULL AND c.probe_at <= now()
          AND c.paused_at IS NULL AND coalesce(c.deferred_until, '-infinity') <= now()
    """).fetchall()


def release_links(conn, app_id, due_before, limit):
    """Up to `limit` of the app's pending links due at `due_before` whose jobs were dropped
    while it was held, made due now for a new generation (a job of theirs still waiting becomes
    a no-op) and returned to be queued. A released link is due after `due_before`, so calling
    this again with the same bound goes on with the rest. Links waiting out a backoff keep their
    scheduled job."""
    return conn.execute(f"""
        WITH due AS (
            SELECT id FROM app_repositories
            WHERE app_id = %(app_id)s AND status = 'pending_snapshot'
              AND (next_attempt_at IS NULL OR next_attempt_at <= %(before)s)
              AND NOT EXISTS (SELECT FROM app_delivery_control c
                              WHERE c.app_id = %(app_id)s AND {HELD})
            ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        UPDATE app_repositories ar
        SET job_generation = job_generation + 1, next_attempt_at = now()
        FROM due WHERE ar.id = due.id
        RETURNING ar.app_id, ar.repository_id, ar.retry_operation_id, ar.job_generation,
                  {STAMP} AS stamp
    """, {"app_id": app_id, "before": due_before, "limit": limit}).fetchall()


def database_now(conn):
    return conn.execute("SELECT now() AS now").fetchone()["now"]


def count_held_links(conn, app_id):
    """The app's links waiting for a job while it is held (pending, not waiting out a backoff)."""
    return conn.execute("""
        SELECT count(*) AS n FROM app_repositories
        WHERE app_id = %s AND status = 'pending_snapshot'
          AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    """, (app_id,)).fetchone()["n"]


def count_all_held_links(conn):
    """Links waiting for a job that no worker will touch until a release: pending links of a
    held app, or of a repository whose git circuit is open. Walks only the held apps' and the
    open repositories' pending links (the in-progress indexes)."""
    return conn.execute(f"""
        SELECT count(*) AS n FROM (
            SELECT ar.id FROM app_delivery_control c
            JOIN app_repositories ar ON ar.app_id = c.app_id AND ar.status = 'pending_snapshot'
            WHERE {HELD}
            UNION
            SELECT ar.id FROM repositories r
            JOIN app_repositories ar ON ar.repository_id = r.repository_id
                                    AND ar.status = 'pending_snapshot'
            WHERE r.circuit_open_until > now()
        ) held
    """).fetchone()["n"]


def last_attempt(conn, app_id):
    """The app's most recent attempt that ended delivered or failed ({outcome, finished_at}),
    or None: the newest attempt of each of its links (delivery_attempts_link_idx), newest of
    all. Read for one app's page, only when its streak alone cannot tell."""
    return conn.execute("""
        SELECT da.outcome, da.finished_at FROM app_repositories ar
        CROSS JOIN LATERAL (SELECT outcome, finished_at FROM delivery_attempts
                            WHERE link_id = ar.id AND outcome IN ('delivered', 'failed')
                            ORDER BY id DESC LIMIT 1) da
        WHERE ar.app_id = %s
        ORDER BY da.finished_at DESC NULLS LAST LIMIT 1
    """, (app_id,)).fetchone()
