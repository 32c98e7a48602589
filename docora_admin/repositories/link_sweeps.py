"""The sweeper's and the watchdog's queries over links (services/jobs/sweeper.py,
services/delivery/leases.py): leases renewed, lost jobs and expired leases found and queued
again, synced links due for a re-scan. Each statement that queues returns what
snapshot_links.QUEUED names."""
from .retry_links import STAMP
from .snapshot_links import NOT_HELD, QUEUED


def renew_leases(conn, claims, lease_seconds):
    """Extend the leases of the links this process is delivering ([(link id, generation)])."""
    if not claims:
        return 0
    return conn.execute("""
        UPDATE app_repositories ar
        SET next_attempt_at = now() + make_interval(secs => %(lease)s)
        FROM unnest(%(ids)s::uuid[], %(generations)s::integer[]) AS c(id, generation)
        WHERE ar.id = c.id AND ar.job_generation = c.generation AND ar.status = 'scanning'
    """, {"ids": [c[0] for c in claims], "generations": [c[1] for c in claims],
          "lease": lease_seconds}).rowcount


def requeue_lost(conn, before_stamp, grace_seconds, limit):
    """Pending links whose job should have started by now but has not: due before
    least(before_stamp, now) - grace, where before_stamp is the place (µs) of the oldest job still
    waiting in the queue (None: the queue is empty). Every job queued before that place has been
    taken off the queue, and a job taken off claims its link at once; such a link's job was lost
    (a process died between commit and push, Redis lost its data, a job failed to start). They
    get a new generation and are returned to be queued again. Links without a due time (created
    by another writer) are due."""
    return conn.execute(f"""
        WITH late AS (
            SELECT id FROM app_repositories
            WHERE status = 'pending_snapshot'
              AND next_attempt_at < least(to_timestamp(%(before)s::bigint / 1000000.0), now())
                                    - make_interval(secs => %(grace)s)
              AND {NOT_HELD}
            ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ), undated AS (
            SELECT id FROM app_repositories
            WHERE status = 'pending_snapshot' AND next_attempt_at IS NULL AND {NOT_HELD}
            LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        UPDATE app_repositories ar
        SET job_generation = job_generation + 1, next_attempt_at = now(),
            retry_cause = coalesce(retry_cause, 'scheduler')
        WHERE ar.id IN (SELECT id FROM late UNION ALL SELECT id FROM undated)
        RETURNING {QUEUED}
    """, {"before": before_stamp, "grace": grace_seconds, "limit": limit}).fetchall()


def release_expired_leases(conn, limit):
    """Links whose delivering job stopped renewing its lease (the worker died, or lost its
    database for longer than the lease): back to pending_snapshot for a new generation, with the
    cut-short attempt logged as interrupted. Returned to be queued."""
    return conn.execute(f"""
        WITH expired AS (
            SELECT id, retry_count + 1 AS attempt, updated_at AS started_at
            FROM app_repositories
            WHERE status = 'scanning' AND next_attempt_at < now()
            ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ), ended AS (
            UPDATE app_repositories ar
            SET status = 'pending_snapshot', updated_at = now(), next_attempt_at = now(),
                job_generation = job_generation + 1
            FROM expired WHERE ar.id = expired.id
            RETURNING ar.id, ar.app_id, ar.repository_id, ar.retry_cause, ar.retry_operation_id,
                      ar.status, ar.job_generation, expired.attempt, expired.started_at
        ), logged AS (
            INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause,
                                           operation_id, started_at, outcome, link_status, error)
            SELECT id, app_id, repository_id, attempt, coalesce(retry_cause, 'scheduler'),
                   retry_operation_id, started_at, 'interrupted', status,
                   'the worker delivering it stopped (its lease expired); queued again'
            FROM ended
        )
        SELECT app_id, repository_id, retry_operation_id, job_generation, {STAMP} AS stamp
        FROM ended
    """, {"limit": limit}).fetchall()


def take_rescans(conn, limit, rescan_minutes):
    """Synced links due for a re-scan: a new episode started by the scheduler. Returned to be
    queued."""
    return conn.execute(f"""
        WITH due AS (
            SELECT id FROM app_repositories
            WHERE status = 'synced'
              AND (last_scanned_at IS NULL
                   OR last_scanned_at <= now() - make_interval(mins => %(rescan)s))
              AND {NOT_HELD}
            ORDER BY last_scanned_at NULLS FIRST LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        UPDATE app_repositories ar
        SET status = 'pending_snapshot', updated_at = now(), next_attempt_at = now(),
            retry_count = 0, job_generation = job_generation + 1,
            retry_cause = 'scheduler', retry_operation_id = NULL
        FROM due WHERE ar.id = due.id
        RETURNING {QUEUED}
    """, {"limit": limit, "rescan": rescan_minutes}).fetchall()
