"""Reads and pruning of the attempt log (rows are written by repositories.snapshot_links in the
same statement as the link's status change), and the retention of the attempt inspector's
request/response details."""


def for_link(conn, link_id, limit=50):
    """A link's attempts, newest first."""
    return conn.execute("""
        SELECT id, attempt, cause, operation_id, started_at, finished_at, outcome, link_status,
               error, http_status, files_sent, bytes_sent, skipped_count, skipped,
               (extract(epoch FROM finished_at - started_at) * 1000)::bigint AS duration_ms,
               request_sent, request_head, request_body, request_body_size,
               request_body_truncated, response_head, response_body, response_body_size,
               response_body_truncated, transport_error
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


# What clearing an attempt's details sets (the attempt itself stays, request_sent true).
_CLEARED = """request_head = NULL, request_body = NULL, request_body_size = NULL,
              request_body_truncated = NULL, response_head = NULL, response_body = NULL,
              response_body_size = NULL, response_body_truncated = NULL,
              transport_error = NULL"""


def clear_details_older_than(conn, days, batch=10_000):
    """Clear the request/response details of one batch of attempts that finished more than
    `days` ago; return how many."""
    return conn.execute(f"""
        UPDATE delivery_attempts SET {_CLEARED}
        WHERE id IN (SELECT id FROM delivery_attempts
                     WHERE request_head IS NOT NULL
                       AND finished_at < now() - make_interval(days => %s)
                     LIMIT %s)
    """, (days, batch)).rowcount


def clear_details_beyond(conn, kept_per_link, batch=10_000):
    """Clear the details of one batch of attempts past the newest `kept_per_link` of their link
    that still hold details; return how many."""
    return conn.execute(f"""
        UPDATE delivery_attempts SET {_CLEARED}
        WHERE id IN (SELECT id FROM (
                         SELECT id, row_number() OVER (PARTITION BY link_id ORDER BY id DESC) AS n
                         FROM delivery_attempts WHERE request_head IS NOT NULL) ranked
                     WHERE n > %s LIMIT %s)
    """, (kept_per_link, batch)).rowcount
