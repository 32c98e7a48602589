"""The snapshot job's view of a link: claim it, read what delivering needs, record how the attempt
ended (the status change and its attempt-log row in one statement). The sweeper's and the
watchdog's queries are in link_sweeps.py.

Every statement that moves a link to pending_snapshot bumps job_generation and returns what the
caller must queue: (app_id, repository_id, retry_operation_id, job_generation) and the statement's
time in microseconds (the job's place in the queue).
"""
from psycopg.types.json import Jsonb

from . import delivered_files, delivery_control
from .delivery_control import HELD
from .retry_links import STAMP

# A link of an app whose deliveries are held (paused, circuit open, deferred) waits for the
# app's release, which queues it: the sweeper neither requeues nor re-scans it meanwhile.
NOT_HELD = f"""NOT EXISTS (SELECT FROM app_delivery_control c
                            WHERE c.app_id = app_repositories.app_id AND {HELD})"""

# What a statement that queues a link returns.
QUEUED = f"app_id, repository_id, retry_operation_id, job_generation, {STAMP} AS stamp"

# The attempt-log row of an attempt that ends in the statement's `ended` CTE. `ended` returns
# the link's id, app_id, repository_id, retry_cause, retry_operation_id and status (the new
# one); the rest comes from parameters.
_LOG_ATTEMPT = """
    INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause, operation_id,
                                   started_at, outcome, link_status, error, http_status,
                                   files_sent, bytes_sent, skipped_count, skipped,
                                   request_sent, request_head, request_body, request_body_size,
                                   request_body_truncated, response_head, response_body,
                                   response_body_size, response_body_truncated, transport_error)
    SELECT id, app_id, repository_id, %(attempt)s, coalesce(retry_cause, 'scheduler'),
           retry_operation_id, %(started_at)s, %(outcome)s, status, %(error)s, %(http_status)s,
           %(files)s, %(bytes)s, %(skipped_count)s, %(skipped)s,
           %(request_sent)s, %(request_head)s, %(request_body)s, %(request_body_size)s,
           %(request_body_truncated)s, %(response_head)s, %(response_body)s,
           %(response_body_size)s, %(response_body_truncated)s, %(transport_error)s
    FROM ended
"""
# The attempt inspector's columns (services/delivery/exchange.stored gives them), none by default.
_NO_DETAILS = dict.fromkeys((
    "request_sent", "request_head", "request_body", "request_body_size",
    "request_body_truncated", "response_head", "response_body", "response_body_size",
    "response_body_truncated", "transport_error"))
# An attempt's log keeps the first SKIPPED_KEPT files it set aside (and the count of all).
SKIPPED_KEPT = 100

# The repository's git circuit as a claim reads it (services/control/repository_circuit.gate):
# tripped (opened, maybe half-open), open now (PostgreSQL's clock), and the streak (reset on
# success).
_REPOSITORY_CIRCUIT = """r.circuit_opened_at IS NOT NULL AS repository_circuit_tripped,
               coalesce(r.circuit_open_until > now(), false) AS repository_circuit_open,
               r.consecutive_failures AS repository_failures"""


# pending_snapshot → scanning for the job queued for %(generation)s, with a lease; {extra} adds
# a condition. RETURNING the claim's columns (see claim()) and the link's own context.
_CLAIM = """
    UPDATE app_repositories ar
    SET status = 'scanning', updated_at = now(),
        next_attempt_at = now() + make_interval(secs => %(lease)s)
    FROM (SELECT id, next_attempt_at AS due_at FROM app_repositories
          WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s) due
    WHERE ar.id = due.id AND ar.status = 'pending_snapshot'
      AND (%(generation)s::integer IS NULL OR ar.job_generation = %(generation)s::integer)
      {extra}
    RETURNING ar.id, ar.retry_count, ar.job_generation, ar.retry_cause,
              ar.retry_operation_id, ar.updated_at AS started_at,
              least(due.due_at, ar.updated_at) AS due_at,
              ar.app_id, ar.repository_id, ar.github_token_encrypted
"""


def claim(conn, app_id, repository_id, generation, lease_seconds):
    """pending_snapshot → scanning in one statement, for the job queued for `generation` (None:
    a job queued before generations existed, which claims whatever is pending). The claim holds
    a lease: next_attempt_at is its end, renewed while the job runs. Returns the link's id,
    retry_count, episode, start time and due_at (when the job became due: the repository state
    it delivers must be at least that recent; None when unknown), or None when there is nothing
    to claim (a duplicate or stale job, or a link whose app or repository was deleted)."""
    return conn.execute(_CLAIM.format(extra=""), {
        "app_id": app_id, "repository_id": repository_id, "generation": generation,
        "lease": lease_seconds}).fetchone()


def claim_unless_held(conn, app_id, repository_id, generation, lease_seconds):
    """claim() and delivery_context() in one statement (autocommit: one round trip, where the
    claim's transaction took five), provided the app's deliveries are not held (paused,
    deferred, circuit open: see services/control/delivery_control.admit for those). Returns held,
    the app's rate_per_second and max_concurrency overrides (None: the defaults), and the claim's
    and the context's columns (id None: nothing claimed)."""
    return conn.execute(f"""
        WITH control AS (
            SELECT {HELD} AS held, c.rate_per_second, c.max_concurrency
            FROM app_delivery_control c WHERE c.app_id = %(app_id)s
        ), claimed AS ({_CLAIM.format(extra="AND NOT EXISTS (SELECT FROM control WHERE held)")})
        SELECT EXISTS (SELECT FROM control WHERE held) AS held,
               (SELECT rate_per_second FROM control), (SELECT max_concurrency FROM control),
               c.*, a.base_url, a.client_auth_key_encrypted,
               r.github_url, r.owner, r.name, r.is_private, {_REPOSITORY_CIRCUIT}
        FROM (SELECT) one
        LEFT JOIN claimed c ON true
        LEFT JOIN apps a ON a.app_id = c.app_id
        LEFT JOIN repositories r ON r.repository_id = c.repository_id
    """, {"app_id": app_id, "repository_id": repository_id, "generation": generation,
          "lease": lease_seconds}).fetchone()


def delivery_context(conn, app_id, repository_id):
    """The app's endpoint and key and the repository's address, for one claimed link."""
    return conn.execute(f"""
        SELECT a.app_id, a.base_url, a.client_auth_key_encrypted,
               r.repository_id, r.github_url, r.owner, r.name, r.is_private,
               ar.github_token_encrypted, ar.retry_count, {_REPOSITORY_CIRCUIT}
        FROM app_repositories ar
        JOIN apps a ON a.app_id = ar.app_id
        JOIN repositories r ON r.repository_id = ar.repository_id
        WHERE ar.app_id = %s AND ar.repository_id = %s
    """, (app_id, repository_id)).fetchone()


def _attempt_params(claim_row, outcome, error=None, http_status=None, files=0, bytes_sent=0,
                    skipped=(), details=None):
    params = {"link_id": claim_row["id"], "generation": claim_row["job_generation"],
              "attempt": claim_row["retry_count"] + 1, "started_at": claim_row["started_at"],
              "outcome": outcome, "error": error, "http_status": http_status, "files": files,
              "bytes": bytes_sent, "skipped_count": len(skipped),
              "skipped": Jsonb([{"path": f.path, "reason": f.reason}
                                for f in skipped[:SKIPPED_KEPT]]) if skipped else None,
              **_NO_DETAILS}
    if details:
        params.update(details)
    return params


def mark_synced(conn, claim_row, files=0, bytes_sent=0, sent=(), deleted=(), skipped=(),
                details=None):
    """The attempt delivered, in one statement: the link is synced and the attempt logged, the
    last files the app acknowledged recorded (`sent` [(path, sha)], `deleted` [path]), and the
    app's failure streak ended. Returns the link's episode (retry_operation_id) and
    circuit_closed (this delivery closed the app's circuit: release the app after the commit),
    or None when the claim was lost meanwhile (the lease expired and the link was given to
    another job; the acknowledgements are recorded all the same, the streak is left).
    `skipped` [file_scan.SkippedFile]: the files set aside, logged with the attempt; `details`
    the attempt inspector's columns (services/delivery/exchange.stored)."""
    params = _attempt_params(claim_row, "delivered", files=files, bytes_sent=bytes_sent,
                             skipped=skipped, details=details)
    params.update(delivered_files.acknowledged_params(
        claim_row["app_id"], claim_row["repository_id"], sent, deleted))
    return conn.execute(f"""
        WITH ended AS (
            UPDATE app_repositories
            SET status = 'synced', updated_at = now(), last_scanned_at = now(),
                retry_count = 0, last_error = NULL, next_attempt_at = NULL
            WHERE id = %(link_id)s AND status = 'scanning'
              AND job_generation = %(generation)s
            RETURNING id, app_id, repository_id, retry_cause, retry_operation_id, status
        ), logged AS ({_LOG_ATTEMPT}
        ), acknowledged AS ({delivered_files.ACKNOWLEDGED}
        ), unacknowledged AS ({delivered_files.UNACKNOWLEDGED}
        ), {delivery_control.STREAK_ENDED.format(condition="AND EXISTS (SELECT FROM ended)")}
        SELECT retry_operation_id, status,
               EXISTS (SELECT FROM before WHERE circuit_opened_at IS NOT NULL) AS circuit_closed,
               (SELECT circuit_opened_at FROM before) AS circuit_opened_at
        FROM ended
    """, params).fetchone()


def mark_attempt_failed(conn, claim_row, error, http_status, max_attempts, backoff_seconds,
                        files=0, bytes_sent=0, skipped=(), details=None):
    """retry_count + 1 and last_error, logged; `failed` at the limit, else back to
    pending_snapshot for a new generation due after the backoff. Returns the link's new status,
    generation, next_attempt_at and episode, or None when the claim was lost meanwhile."""
    params = _attempt_params(claim_row, "failed", error, http_status, files, bytes_sent,
                             skipped, details)
    params.update(max=max_attempts, delay=backoff_seconds)
    return conn.execute(f"""
        WITH ended AS (
            UPDATE app_repositories
            SET retry_count = retry_count + 1, last_error = %(error)s, updated_at = now(),
                status = CASE WHEN retry_count + 1 >= %(max)s THEN 'failed'
                              ELSE 'pending_snapshot' END,
                next_attempt_at = CASE WHEN retry_count + 1 >= %(max)s THEN NULL
                                       ELSE now() + make_interval(secs => %(delay)s) END,
                job_generation = job_generation + 1
            WHERE id = %(link_id)s AND status = 'scanning'
              AND job_generation = %(generation)s
            RETURNING id, app_id, repository_id, retry_cause, retry_operation_id, status,
                      job_generation, next_attempt_at
        ), logged AS ({_LOG_ATTEMPT})
        SELECT app_id, repository_id, retry_operation_id, status, job_generation,
               next_attempt_at FROM ended
    """, params).fetchone()


def give_back(conn, claim_row, outcome, error, http_status=None, delay_seconds=0, files=0,
              bytes_sent=0, details=None):
    """The attempt ended without counting against the link: cut short by an outage of ours
    (outcome "interrupted", due now) or the app asked us to wait (outcome "deferred", due after
    `delay_seconds`). The link goes back to pending_snapshot for a new generation and the
    attempt is logged. Returns what to queue (with its stamp) or schedule (next_attempt_at), or
    None when the claim was lost meanwhile."""
    params = _attempt_params(claim_row, outcome, error, http_status, files, bytes_sent,
                             details=details)
    params["delay"] = delay_seconds
    return conn.execute(f"""
        WITH ended AS (
            UPDATE app_repositories
            SET status = 'pending_snapshot', updated_at = now(),
                next_attempt_at = now() + make_interval(secs => %(delay)s),
                job_generation = job_generation + 1
            WHERE id = %(link_id)s AND status = 'scanning'
              AND job_generation = %(generation)s
            RETURNING id, app_id, repository_id, retry_cause, retry_operation_id, status,
                      job_generation, next_attempt_at
        ), logged AS ({_LOG_ATTEMPT})
        SELECT app_id, repository_id, retry_operation_id, job_generation, next_attempt_at,
               {STAMP} AS stamp
        FROM ended
    """, params).fetchone()


def release_claim(conn, claim_row, delay_seconds):
    """Give a claimed link back untried (its repository was busy): pending_snapshot for a new
    generation, due after `delay_seconds`, nothing logged. Returns what to schedule, or None
    when the claim was lost meanwhile."""
    return conn.execute("""
        UPDATE app_repositories
        SET status = 'pending_snapshot', updated_at = now(),
            next_attempt_at = now() + make_interval(secs => %(delay)s),
            job_generation = job_generation + 1
        WHERE id = %(link_id)s AND status = 'scanning' AND job_generation = %(generation)s
        RETURNING app_id, repository_id, retry_operation_id, job_generation, next_attempt_at
    """, {"link_id": claim_row["id"], "generation": claim_row["job_generation"],
          "delay": delay_seconds}).fetchone()


def holds_claim(conn, claim_row):
    """Whether the job that made this claim still holds the link."""
    return conn.execute("""
        SELECT EXISTS (SELECT FROM app_repositories
                       WHERE id = %s AND status = 'scanning' AND job_generation = %s) AS held
    """, (claim_row["id"], claim_row["job_generation"])).fetchone()["held"]


def skip_wait(conn, app_id, repository_id):
    """"Retry now" for a link waiting out a backoff: due now, for a new generation (the
    scheduled job of the old one becomes a no-op). Returns what to queue, or None when the link
    is not waiting."""
    return conn.execute(f"""
        UPDATE app_repositories
        SET next_attempt_at = now(), job_generation = job_generation + 1
        WHERE app_id = %s AND repository_id = %s AND status = 'pending_snapshot'
          AND next_attempt_at > now()
        RETURNING {QUEUED}
    """, (app_id, repository_id)).fetchone()
