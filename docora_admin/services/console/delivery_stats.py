"""Deliveries and failures over time, overall or for one app, as the Charts page and
GET /admin/api/stats/deliveries show them: per minute over the last hour, per hour over the
last day or week, with the success rate and the p50/p95 delivery time of each period and of the
window.

Counted: attempts that ended `delivered` or `failed` (the attempt log's outcomes that count
toward delivery; interrupted, deferred and sync_failed attempts are not deliveries). Delivery
time: finished_at - started_at of a delivered attempt. Percentiles come from the rollup's
fixed-bucket histogram (repositories/delivery_stats.py), interpolated within the bucket that
holds the rank: the true value lies in the same bucket, so the error is at most the bucket's
width, 25 % of the value (10 ms under 10 ms)."""
from datetime import timezone

from ... import db
from ...errors import ApiError
from ...input_values import valid_id
from ...repositories import delivery_stats

# window: (seconds per bucket, buckets, words)
WINDOWS = {"1h": (60, 60, "the last hour"), "1d": (3600, 24, "the last day"),
           "7d": (3600, 168, "the last 7 days")}
MAX_RELATIVE_ERROR = delivery_stats.LATENCY_RATIO - 1
SMALLEST_BUCKET_MS = delivery_stats.LATENCY_FIRST_MS


def parse_query(args):
    """(window, app_id or None) from the query string; ApiError 400 with a one-line message for
    a window other than 1h, 1d, 7d or an app_id that is not an app's."""
    window = args.get("window") or "1h"
    if window not in WINDOWS:
        raise ApiError(400, "window must be one of 1h, 1d, 7d")
    app_id = args.get("app_id") or None
    if app_id is not None:
        if not valid_id(app_id):
            raise ApiError(400, "app_id must be an app id like app_<24 hex>")
        with db.connection() as conn:
            if not delivery_stats.app_exists(conn, app_id):
                raise ApiError(400, f"app_id {app_id} is not an app")
    return window, app_id


def percentile(histogram, q):
    """The `q` quantile (0 < q < 1) in ms of a histogram [count per bucket], interpolated within
    its bucket; None for an empty histogram. In the last, open bucket: that bucket's lower
    bound."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(histogram, start=1):
        if count and below + count >= rank:
            lower, upper = delivery_stats.latency_bounds(index)
            if upper is None:
                return round(lower)
            return round(lower + (upper - lower) * (rank - below) / count)
        below += count
    return None  # not reached: the counts add up to total


def _numbers(delivered, failed, histogram):
    ended = delivered + failed
    return {"delivered": delivered, "failed": failed,
            "success_rate": round(delivered / ended, 4) if ended else None,
            "p50_ms": percentile(histogram, 0.50), "p95_ms": percentile(histogram, 0.95)}


def deliveries(window="1h", app_id=None):
    """The window's buckets, oldest first, every one present (zeros where nothing ended), and
    the totals. Times are PostgreSQL's, in UTC."""
    granularity, count, words = WINDOWS[window]
    with db.connection() as conn:
        starts, now = delivery_stats.window_periods(conn, granularity, count)
        found = {row["period_start"]: row for row in
                 delivery_stats.sums_by_period(conn, granularity, starts[0], app_id)}
    empty = [0] * delivery_stats.LATENCY_BUCKETS
    buckets, total_histogram, delivered, failed = [], list(empty), 0, 0
    for start in starts:
        row = found.get(start) or {"delivered": 0, "failed": 0, "latency": empty}
        buckets.append({"start": start.astimezone(timezone.utc), **_numbers(row["delivered"], row["failed"],
                                                   row["latency"])})
        delivered += row["delivered"]
        failed += row["failed"]
        total_histogram = [a + b for a, b in zip(total_histogram, row["latency"])]
    return {"window": window, "window_words": words, "app_id": app_id,
            "bucket_seconds": granularity, "now": now.astimezone(timezone.utc), "buckets": buckets,
            "totals": _numbers(delivered, failed, total_histogram)}


def deliveries_json(window="1h", app_id=None):
    """deliveries() with ISO 8601 UTC times, as GET /admin/api/stats/deliveries answers."""
    stats = deliveries(window, app_id)
    return {"window": stats["window"], "app_id": stats["app_id"],
            "bucket_seconds": stats["bucket_seconds"], "now": _iso(stats["now"]),
            "buckets": [{**bucket, "start": _iso(bucket["start"])}
                        for bucket in stats["buckets"]],
            "totals": stats["totals"],
            "percentiles": {"method": "histogram",
                            "max_relative_error": round(MAX_RELATIVE_ERROR, 4),
                            "max_error_below_10ms": SMALLEST_BUCKET_MS}}


def app_choices():
    """[{app_id, app_name}] for the app filter."""
    with db.connection() as conn:
        return delivery_stats.apps_with_names(conn)


def prune():
    """Drop rollup rows older than any window shows; return how many (hourly, with the attempt
    log's pruning)."""
    with db.connection() as conn:
        return delivery_stats.prune(conn)


def _iso(moment):
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
