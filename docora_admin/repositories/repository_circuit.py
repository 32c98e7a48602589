"""The per-repository git circuit (repositories.consecutive_failures, circuit_open_until,
circuit_opened_at, circuit_episode, last_git_error) and the sync_failed outbox
(repository_sync_failed_notices). Every time comes from PostgreSQL's clock: several worker
machines share the database, never their own clocks.

States of a repository's circuit:
- closed: circuit_opened_at IS NULL (consecutive_failures counts git failures in a row);
- open: circuit_open_until > now(): no git work for its links;
- half-open: circuit_opened_at set and circuit_open_until passed: the next job is the probe.
"""
from .delivery_control import HELD
from .retry_links import STAMP

_STATE = """r.repository_id, r.consecutive_failures, r.circuit_open_until, r.circuit_opened_at,
    r.circuit_episode, r.last_git_error, r.last_git_failure_at,
    coalesce(r.circuit_open_until > now(), false) AS circuit_open"""


def record_git_failure(conn, repository_id, error, threshold, cooldown_minutes, was_probe):
    """One more git failure in the repository's streak, in the transaction that marks the
    attempt failed. The circuit opens at `threshold` in a row (closed → open), and again when
    the half-open probe (`was_probe`) fails; opening starts a new episode and inserts one
    sync_failed notice per linked app. Returns the repository's state after, with `opened` and
    `notices` (rows inserted), or None when the repository is gone."""
    return conn.execute(f"""
        WITH before AS (
            SELECT repository_id,
                   (circuit_opened_at IS NULL AND consecutive_failures + 1 >= %(threshold)s)
                   OR (circuit_opened_at IS NOT NULL AND %(probe)s) AS opens
            FROM repositories WHERE repository_id = %(id)s FOR UPDATE
        ), counted AS (
            UPDATE repositories r
            SET consecutive_failures = r.consecutive_failures + 1,
                last_git_error = %(error)s, last_git_failure_at = now(), updated_at = now(),
                circuit_opened_at = CASE WHEN b.opens THEN now() ELSE r.circuit_opened_at END,
                circuit_open_until = CASE WHEN b.opens
                    THEN now() + make_interval(mins => %(cooldown)s)
                    ELSE r.circuit_open_until END,
                circuit_episode = r.circuit_episode + b.opens::int
            FROM before b WHERE r.repository_id = b.repository_id
            RETURNING r.repository_id, r.consecutive_failures, r.circuit_open_until,
                      r.circuit_episode, b.opens AS opened
        ), notices AS (
            INSERT INTO repository_sync_failed_notices
                (repository_id, app_id, link_id, episode, error, consecutive_failures,
                 threshold, cooldown_until, retry_count)
            SELECT ar.repository_id, ar.app_id, ar.id, c.circuit_episode, %(error)s,
                   c.consecutive_failures, %(threshold)s, c.circuit_open_until, ar.retry_count
            FROM counted c JOIN app_repositories ar ON ar.repository_id = c.repository_id
            WHERE c.opened
            ON CONFLICT (repository_id, app_id, episode) DO NOTHING
            RETURNING app_id
        )
        SELECT c.*, (SELECT count(*) FROM notices) AS notices FROM counted c
    """, {"id": repository_id, "error": error, "threshold": threshold,
          "cooldown": cooldown_minutes, "probe": was_probe}).fetchone()


def take_probe(conn, repository_id, lease_seconds):
    """For a job that claimed a link of a tripped repository: take the half-open circuit's probe
    (its circuit_open_until moves `lease_seconds` ahead, so the repository's other jobs wait for
    the probe's outcome). Returns {probe, tripped}: probe true when taken; else tripped says
    whether the circuit still holds the job (open) or was closed meanwhile (go on)."""
    return conn.execute("""
        WITH probe AS (
            UPDATE repositories
            SET circuit_open_until = now() + make_interval(secs => %(lease)s)
            WHERE repository_id = %(id)s AND circuit_opened_at IS NOT NULL
              AND circuit_open_until <= now()
            RETURNING repository_id
        )
        SELECT EXISTS (SELECT FROM probe) AS probe,
               coalesce((SELECT circuit_opened_at IS NOT NULL FROM repositories
                         WHERE repository_id = %(id)s), false) AS tripped
    """, {"id": repository_id, "lease": lease_seconds}).fetchone()


def hold_link(conn, claim_row):
    """Give a claimed link of a repository whose circuit is open back untried and uncounted:
    pending_snapshot for a new generation, due when the circuit's cooldown ends (now if it has
    closed meanwhile). Returns what to schedule, or None when the claim was lost meanwhile."""
    return conn.execute("""
        UPDATE app_repositories ar
        SET status = 'pending_snapshot', updated_at = now(),
            next_attempt_at = greatest(now(), coalesce(r.circuit_open_until, now())),
            job_generation = ar.job_generation + 1
        FROM repositories r
        WHERE ar.id = %(link_id)s AND ar.status = 'scanning'
          AND ar.job_generation = %(generation)s AND r.repository_id = ar.repository_id
        RETURNING ar.app_id, ar.repository_id, ar.retry_operation_id, ar.job_generation,
                  ar.next_attempt_at
    """, {"link_id": claim_row["id"], "generation": claim_row["job_generation"]}).fetchone()


def reset(conn, repository_id):
    """A git fetch or look went through (or an operator closed the circuit): the streak ends and
    the circuit closes. Returns the state as it was before (consecutive_failures,
    circuit_opened_at, circuit_open_until), or None when there was nothing to reset."""
    return conn.execute("""
        WITH before AS (
            SELECT repository_id, consecutive_failures, circuit_opened_at, circuit_open_until
            FROM repositories
            WHERE repository_id = %s
              AND (consecutive_failures > 0 OR circuit_opened_at IS NOT NULL)
            FOR UPDATE
        ), closed AS (
            UPDATE repositories r
            SET consecutive_failures = 0, circuit_opened_at = NULL, circuit_open_until = NULL,
                updated_at = now()
            FROM before b WHERE r.repository_id = b.repository_id
        )
        SELECT * FROM before
    """, (repository_id,)).fetchone()


def release_links(conn, repository_id, limit):
    """Up to `limit` of the repository's pending links waiting for a later time (held for its
    circuit's cooldown; a link waiting out its own backoff is taken too), made due now for a new
    generation and returned to be queued. Links of held apps wait for their app's release."""
    return conn.execute(f"""
        WITH due AS (
            SELECT id FROM app_repositories ar
            WHERE repository_id = %(id)s AND status = 'pending_snapshot'
              AND next_attempt_at > now()
              AND NOT EXISTS (SELECT FROM app_delivery_control c
                              WHERE c.app_id = ar.app_id AND {HELD})
            ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        UPDATE app_repositories ar
        SET job_generation = job_generation + 1, next_attempt_at = now()
        FROM due WHERE ar.id = due.id
        RETURNING ar.app_id, ar.repository_id, ar.retry_operation_id, ar.job_generation,
                  {STAMP} AS stamp
    """, {"id": repository_id, "limit": limit}).fetchall()


# --- what the console shows ----------------------------------------------------------------

def for_repositories(conn, repository_ids):
    """{repository_id: state row} (see _STATE), with the current episode's notices counted:
    notices, notices_sent, notices_failed."""
    rows = conn.execute(f"""
        SELECT {_STATE}, coalesce(n.total, 0) AS notices, coalesce(n.sent, 0) AS notices_sent,
               coalesce(n.failed, 0) AS notices_failed, r.owner, r.name
        FROM repositories r
        LEFT JOIN LATERAL (
            SELECT count(*) AS total, count(*) FILTER (WHERE status = 'sent') AS sent,
                   count(*) FILTER (WHERE status = 'failed') AS failed
            FROM repository_sync_failed_notices n
            WHERE n.repository_id = r.repository_id AND n.episode = r.circuit_episode
        ) n ON r.circuit_episode > 0
        WHERE r.repository_id = ANY(%s)
    """, (list(repository_ids),)).fetchall()
    return {row["repository_id"]: row for row in rows}


def tripped_repositories(conn, limit):
    """Repositories whose circuit is open or half-open, soonest reopening first, with how many
    links each has."""
    return conn.execute(f"""
        SELECT {_STATE}, r.owner, r.name,
               (SELECT count(*) FROM app_repositories ar
                WHERE ar.repository_id = r.repository_id) AS links
        FROM repositories r WHERE r.circuit_opened_at IS NOT NULL
        ORDER BY r.circuit_open_until, r.repository_id LIMIT %s
    """, (limit,)).fetchall()


def count_open(conn):
    """Repositories whose circuit is open now (the partial index answers it)."""
    return conn.execute("""
        SELECT count(*) AS n FROM repositories
        WHERE circuit_opened_at IS NOT NULL AND circuit_open_until > now()
    """).fetchone()["n"]


def notice_counts(conn):
    """{status: count} over the sync_failed outbox."""
    rows = conn.execute("SELECT status, count(*) AS n FROM repository_sync_failed_notices "
                        "GROUP BY status").fetchall()
    return {row["status"]: row["n"] for row in rows}
