"""Counts read at each /metrics scrape. Each is one cheap statement: an index or a small table."""


def link_counts_by_status(conn):
    """{status: count} over all links."""
    rows = conn.execute(
        "SELECT status, count(*) AS n FROM app_repositories GROUP BY status").fetchall()
    return {row["status"]: row["n"] for row in rows}


def count_running_bulk_operations(conn):
    """Bulk retries running or being cancelled."""
    return conn.execute("SELECT count(*) AS n FROM bulk_operations "
                        "WHERE status IN ('running', 'cancelling')").fetchone()["n"]


def held_apps_by_reason(conn):
    """{reason: apps} of apps whose deliveries are held (a small table)."""
    rows = conn.execute("""
        SELECT CASE WHEN paused_at IS NOT NULL THEN 'paused'
                    WHEN circuit_opened_at IS NOT NULL THEN 'circuit_open'
                    ELSE 'deferred' END AS reason, count(*) AS n
        FROM app_delivery_control
        WHERE paused_at IS NOT NULL OR circuit_opened_at IS NOT NULL OR deferred_until > now()
        GROUP BY 1
    """).fetchall()
    return {row["reason"]: row["n"] for row in rows}


def attempts_by_outcome_since(conn, seconds):
    """{outcome: count} of delivery attempts that finished in the last `seconds` (the BRIN
    index on finished_at narrows it to the recent blocks)."""
    rows = conn.execute("""
        SELECT outcome, count(*) AS n FROM delivery_attempts
        WHERE finished_at >= now() - make_interval(secs => %s)
        GROUP BY outcome
    """, (seconds,)).fetchall()
    return {row["outcome"]: row["n"] for row in rows}
