"""The snapshot job's view of a link: claim it, read what delivering needs, record the outcome,
and the scheduler's queries."""

# How long a queued job may take to start before the scheduler queues it again.
LOST_JOB_GRACE = "10 minutes"


def claim(conn, app_id, repository_id):
    """pending_snapshot → scanning in one statement; None when there is nothing to claim
    (a duplicate or stale job, or a link whose app or repository was deleted)."""
    return conn.execute("""
        UPDATE app_repositories SET status = 'scanning', updated_at = now()
        WHERE app_id = %s AND repository_id = %s AND status = 'pending_snapshot'
        RETURNING id, retry_count
    """, (app_id, repository_id)).fetchone()


def delivery_context(conn, app_id, repository_id):
    """The app's endpoint and key and the repository's address, for one claimed link."""
    return conn.execute("""
        SELECT a.app_id, a.base_url, a.client_auth_key_encrypted,
               r.repository_id, r.github_url, r.owner, r.name, r.is_private,
               ar.github_token_encrypted, ar.retry_count
        FROM app_repositories ar
        JOIN apps a ON a.app_id = ar.app_id
        JOIN repositories r ON r.repository_id = ar.repository_id
        WHERE ar.app_id = %s AND ar.repository_id = %s
    """, (app_id, repository_id)).fetchone()


def mark_synced(conn, app_id, repository_id):
    conn.execute("""
        UPDATE app_repositories
        SET status = 'synced', updated_at = now(), last_scanned_at = now(), retry_count = 0,
            last_error = NULL, next_attempt_at = NULL
        WHERE app_id = %s AND repository_id = %s AND status = 'scanning'
    """, (app_id, repository_id))


def mark_attempt_failed(conn, app_id, repository_id, error, max_attempts, backoff_seconds):
    """retry_count + 1 and last_error; `failed` at the limit, else back to pending_snapshot
    after a delay. Returns the new status."""
    row = conn.execute("""
        UPDATE app_repositories
        SET retry_count = retry_count + 1, last_error = %(error)s, updated_at = now(),
            status = CASE WHEN retry_count + 1 >= %(max)s THEN 'failed'
                          ELSE 'pending_snapshot' END,
            next_attempt_at = CASE WHEN retry_count + 1 >= %(max)s THEN NULL
                                   ELSE now() + make_interval(secs => %(delay)s) END
        WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
          AND status = 'scanning'
        RETURNING status
    """, {"error": error, "max": max_attempts, "delay": backoff_seconds, "app_id": app_id,
          "repository_id": repository_id}).fetchone()
    return row["status"] if row else None


def take_due(conn, limit, rescan_minutes):
    """Links the scheduler should queue now, marked so the next run skips them:
    pending_snapshot whose next attempt is due, and synced links due for a re-scan (moved to
    pending_snapshot). Never failed ones."""
    return conn.execute(f"""
        WITH pending AS (
            SELECT id FROM app_repositories
            WHERE status = 'pending_snapshot'
              AND (next_attempt_at IS NULL OR next_attempt_at <= now())
            ORDER BY next_attempt_at NULLS FIRST LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ), rescan AS (
            SELECT id FROM app_repositories
            WHERE status = 'synced'
              AND (last_scanned_at IS NULL
                   OR last_scanned_at <= now() - make_interval(mins => %(rescan)s))
            ORDER BY last_scanned_at NULLS FIRST LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        UPDATE app_repositories ar
        SET status = 'pending_snapshot',
            next_attempt_at = now() + interval '{LOST_JOB_GRACE}'
        WHERE ar.id IN (SELECT id FROM pending UNION ALL SELECT id FROM rescan)
        RETURNING ar.app_id, ar.repository_id
    """, {"limit": limit, "rescan": rescan_minutes}).fetchall()


def release_stuck_scans(conn, older_than_minutes):
    """A worker that died mid-job leaves its link in `scanning`; give it back to the scheduler."""
    return conn.execute("""
        UPDATE app_repositories SET status = 'pending_snapshot', next_attempt_at = now()
        WHERE status = 'scanning'
          AND updated_at < now() - make_interval(mins => %s)
        RETURNING app_id, repository_id
    """, (older_than_minutes,)).fetchall()
