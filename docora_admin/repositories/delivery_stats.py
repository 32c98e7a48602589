"""The delivery charts' rollup (migration 025): per app and per minute or hour, attempts
delivered and failed and a histogram of the delivered ones' durations. A trigger on
delivery_attempts writes it in the statement that logs each attempt; this module reads and prunes
it. Periods are PostgreSQL's: date_bin on finished_at (the database's clock, whatever the
workers' clocks say)."""

# The histogram's buckets, as migration 025's delivery_latency_bucket() numbers them: bucket 1 is
# [0, 10 ms), bucket k is [10 * 1.25^(k-2), 10 * 1.25^(k-1)) ms, the last one open-ended.
LATENCY_BUCKETS = 60
LATENCY_FIRST_MS = 10.0
LATENCY_RATIO = 1.25


def latency_bounds(bucket):
    """(lower, upper) in ms of 1-based `bucket`; upper is None for the last, open one."""
    if bucket == 1:
        return 0.0, LATENCY_FIRST_MS
    lower = LATENCY_FIRST_MS * LATENCY_RATIO ** (bucket - 2)
    return lower, (None if bucket == LATENCY_BUCKETS else lower * LATENCY_RATIO)


# One sum per histogram bucket, written out from the constant above (no input in it): summing
# array elements by position is several times faster than unnesting the arrays.
_LATENCY_SUMS = ", ".join(f"sum(latency[{i}])::bigint AS l{i}"
                          for i in range(1, LATENCY_BUCKETS + 1))


def window_periods(conn, granularity, periods):
    """The `periods` period starts of `granularity` seconds that end with the current one
    (PostgreSQL's now()), oldest first, and now() itself."""
    rows = conn.execute("""
        WITH here AS (SELECT now() AS now,
                             date_bin(make_interval(secs => %(g)s), now(),
                                      timestamptz 'epoch') AS current)
        SELECT here.now, here.current - make_interval(secs => %(g)s * k) AS period_start
        FROM here, generate_series(%(n)s - 1, 0, -1) k
    """, {"g": granularity, "n": periods}).fetchall()
    return [row["period_start"] for row in rows], rows[0]["now"]


def sums_by_period(conn, granularity, since, app_id=None):
    """[{period_start, delivered, failed, latency: [count per bucket]}] of the periods from
    `since` on that have rows, overall or for `app_id`."""
    rows = conn.execute(f"""
        SELECT period_start, sum(delivered)::bigint AS delivered,
               sum(failed)::bigint AS failed, {_LATENCY_SUMS}
        FROM delivery_stats
        WHERE granularity = %(g)s AND period_start >= %(since)s
          AND (%(app_id)s::varchar IS NULL OR app_id = %(app_id)s::varchar)
        GROUP BY period_start
    """, {"g": granularity, "since": since, "app_id": app_id}).fetchall()
    return [{"period_start": row["period_start"], "delivered": row["delivered"],
             "failed": row["failed"],
             "latency": [row[f"l{i}"] for i in range(1, LATENCY_BUCKETS + 1)]}
            for row in rows]


def app_exists(conn, app_id):
    """Whether `app_id` is an app, or was one whose history the charts still hold."""
    return conn.execute("""
        SELECT EXISTS (SELECT FROM apps WHERE app_id = %(a)s)
            OR EXISTS (SELECT FROM delivery_stats WHERE granularity = 3600 AND app_id = %(a)s
                       AND period_start >= now() - interval '8 days') AS known
    """, {"a": app_id}).fetchone()["known"]


def apps_with_names(conn):
    """[{app_id, app_name}] of every app, by name, for the charts' app filter."""
    return conn.execute(
        "SELECT app_id, app_name FROM apps ORDER BY lower(app_name), app_id").fetchall()


def prune(conn):
    """Delete minute rows older than a day and hour rows older than 8 days (more than the
    charts show); return how many."""
    return conn.execute("""
        DELETE FROM delivery_stats
        WHERE (granularity = 60 AND period_start < now() - interval '1 day')
           OR (granularity = 3600 AND period_start < now() - interval '8 days')
    """).rowcount
