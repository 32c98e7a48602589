"""SQL of the job outbox (migration 017, services/jobs/outbox.py): marks written with the
statement that makes links due, cleared by the push, and the marks whose push never came."""

# For a statement's CTE: one mark for the links of CTE `{rows}` (app_id, repository_id), none
# when it has none; `{stamp}` is the statement's queue place. RETURNING id.
NOTE_CTE = """INSERT INTO job_outbox (stamp, app_ids, repository_ids)
    SELECT {stamp}, array_agg(app_id), array_agg(repository_id) FROM {rows} HAVING count(*) > 0
    RETURNING id"""


def note(conn, stamp, links):
    """One mark for these (app_id, repository_id), at queue place `stamp` (None: now); returns
    its id."""
    return conn.execute("""
        INSERT INTO job_outbox (stamp, app_ids, repository_ids)
        VALUES (coalesce(%s, (extract(epoch FROM now()) * 1000000)::bigint), %s, %s)
        RETURNING id
    """, (stamp, [a for a, _ in links], [r for _, r in links])).fetchone()["id"]


def clear(conn, mark_ids):
    conn.execute("DELETE FROM job_outbox WHERE id = ANY(%s)", (list(mark_ids),))


def take_unpushed(conn, grace_seconds, limit):
    """Marks older than the grace, locked (SKIP LOCKED: one process takes each) until the
    caller's transaction ends: [{id, stamp, links: [{app_id, repository_id, retry_operation_id,
    job_generation, next_attempt_at}]}], the links being those still waiting for a job."""
    marks = conn.execute("""
        SELECT id, stamp, app_ids, repository_ids FROM job_outbox
        WHERE created_at < now() - make_interval(secs => %s)
        ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
    """, (grace_seconds, limit)).fetchall()
    for mark in marks:
        mark["links"] = conn.execute("""
            SELECT ar.app_id, ar.repository_id, ar.retry_operation_id, ar.job_generation,
                   ar.next_attempt_at > now() AS later, ar.next_attempt_at
            FROM unnest(%s::text[], %s::text[]) AS l(app_id, repository_id)
            JOIN app_repositories ar
              ON ar.app_id = l.app_id AND ar.repository_id = l.repository_id
            WHERE ar.status = 'pending_snapshot'
        """, (mark.pop("app_ids"), mark.pop("repository_ids"))).fetchall()
    return marks


def count_older_than(conn, seconds):
    return conn.execute("SELECT count(*) AS n FROM job_outbox "
                        "WHERE created_at < now() - make_interval(secs => %s)",
                        (seconds,)).fetchone()["n"]
