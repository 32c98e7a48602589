"""Reads and pruning of the attempt log (rows are written by repositories.snapshot_links in the
same statement as the link's status change)."""


def for_link(conn, link_id, limit=50):
    """A link's attempts, newest first."""
    return conn.execute("""
        SELECT id, attempt, cause, operation_id, started_at, finished_at, outcome, link_status,
               error, http_status, files_sent, bytes_sent, skipped_count, skipped,
               (extract(epoch FROM finished_at - started_at) * 1000)::bigint AS duration_ms
        FROM delivery_attempts WHERE link_id = %s ORDER BY id DESC LIMIT %s
    """, (link_id, limit)).fetchall()


def count_for_link(conn, link_id):
    return conn.execute("SELECT count(*) AS n FROM delivery_attempts WHERE link_id = %s",
                        (link_id,)).fetchone()["n"]


def prune_older_than(conn, days, batch=10_000):
    """Delete one batch of attempts that finished more than `days` ago; return how many."""
    return conn.execute("""
        DELETE FROM delivery_attempts
        WHERE id IN (SELECT id FROM delivery_attempts
                     WHERE finished_at < now() - make_interval(days => %s)
                     LIMIT %s)
    """, (days, batch)).rowcount
