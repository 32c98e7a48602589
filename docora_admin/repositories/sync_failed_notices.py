"""The sync_failed outbox (repository_sync_failed_notices, migration 011): rows are inserted by
repositories.repository_circuit.record_git_failure when a repository's circuit opens; here they
are claimed with a lease, and their end (sent, or given up) is recorded with an attempt-log row
on the app's link in the same statement."""
from .delivery_control import HELD

# The attempt-log row of a notice that ends in the statement's `ended` CTE (the notice's row).
_LOG = """
    INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause, operation_id,
                                   started_at, outcome, link_status, error, http_status)
    SELECT e.link_id, e.app_id, e.repository_id, e.sends, 'repo_circuit', NULL,
           %(started_at)s, %(outcome)s, coalesce(ar.status, 'gone'), %(log_error)s,
           %(http_status)s
    FROM ended e LEFT JOIN app_repositories ar ON ar.id = e.link_id
"""


def any_due(conn):
    """Whether a notice is waiting to be sent now (its app not held)."""
    return conn.execute(f"""
        SELECT EXISTS (
            SELECT FROM repository_sync_failed_notices n
            WHERE n.status = 'pending' AND n.next_attempt_at <= now()
              AND NOT EXISTS (SELECT FROM app_delivery_control c
                              WHERE c.app_id = n.app_id AND {HELD})) AS due
    """).fetchone()["due"]


def claim_due(conn, limit, lease_seconds):
    """Up to `limit` notices due now whose app is not held (paused, circuit open, asked to wait:
    they go once it is released), each claimed for `lease_seconds` (next_attempt_at moves to
    the lease's end, sends + 1); two senders never claim the same row. Returns them with the
    repository's and the app's columns the request needs, and the database's time (started_at)."""
    return conn.execute(f"""
        WITH due AS (
            SELECT n.id FROM repository_sync_failed_notices n
            WHERE n.status = 'pending' AND n.next_attempt_at <= now()
              AND NOT EXISTS (SELECT FROM app_delivery_control c
                              WHERE c.app_id = n.app_id AND {HELD})
            ORDER BY n.next_attempt_at, n.id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE repository_sync_failed_notices n
            SET next_attempt_at = now() + make_interval(secs => %(lease)s), sends = sends + 1
            FROM due WHERE n.id = due.id
            RETURNING n.*
        )
        SELECT c.*, now() AS started_at, r.github_url, r.owner, r.name, a.base_url,
               a.client_auth_key_encrypted
        FROM claimed c
        JOIN repositories r ON r.repository_id = c.repository_id
        JOIN apps a ON a.app_id = c.app_id
        ORDER BY c.id
    """, {"limit": limit, "lease": lease_seconds}).fetchall()


def prune_ended_before(conn, days):
    """Delete the notices that ended (sent or given up) more than `days` ago; return how many.
    Their attempt-log rows follow the attempt log's own retention."""
    return conn.execute("""
        DELETE FROM repository_sync_failed_notices
        WHERE status <> 'pending'
          AND coalesce(sent_at, next_attempt_at) < now() - make_interval(days => %s)
    """, (days,)).rowcount


def mark_sent(conn, notice, http_status, error):
    """The app acknowledged: the notice is sent and logged on the link (once: a notice already
    marked, by a sender whose lease had run out, is left). Returns True when marked here."""
    return conn.execute(f"""
        WITH ended AS (
            UPDATE repository_sync_failed_notices
            SET status = 'sent', sent_at = now(), http_status = %(http_status)s,
                last_error = NULL
            WHERE id = %(id)s AND status = 'pending'
            RETURNING link_id, app_id, repository_id, sends
        ), logged AS ({_LOG})
        SELECT count(*) AS n FROM ended
    """, {"id": notice["id"], "http_status": http_status, "started_at": notice["started_at"],
          "outcome": "sync_failed", "log_error": error}).fetchone()["n"] == 1


def mark_unsent(conn, notice, error, http_status, max_sends, delay_seconds):
    """The request failed: due again after `delay_seconds`, or given up at `max_sends` (status
    failed, logged on the link as notice_failed). Returns the notice's status after (None when
    it had been marked meanwhile)."""
    row = conn.execute(f"""
        WITH ended AS (
            UPDATE repository_sync_failed_notices
            SET last_error = %(error)s, http_status = %(http_status)s,
                status = CASE WHEN sends >= %(max)s THEN 'failed' ELSE 'pending' END,
                next_attempt_at = CASE WHEN sends >= %(max)s THEN next_attempt_at
                                       ELSE now() + make_interval(secs => %(delay)s) END
            WHERE id = %(id)s AND status = 'pending'
            RETURNING link_id, app_id, repository_id, sends, status
        ), logged AS ({_LOG} WHERE e.status = 'failed')
        SELECT status FROM ended
    """, {"id": notice["id"], "error": error, "http_status": http_status, "max": max_sends,
          "delay": delay_seconds, "started_at": notice["started_at"],
          "outcome": "notice_failed", "log_error": error}).fetchone()
    return row["status"] if row else None
