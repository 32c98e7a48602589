"""The delivery charts' numbers (services/console/delivery_stats.py) against a seeded attempt log:
exact counts per bucket, empty buckets as zeros, success rate, p50/p95 within the histogram's
stated error, the per-app filter, bad input; and the Charts page: the SVG and a table twin that
carries the same numbers as the JSON."""
import math
import re
import uuid
from datetime import timezone

import pytest

from docora_admin import db
from docora_admin.repositories import delivery_stats as repo
from docora_admin.services.console import delivery_stats


@pytest.fixture(autouse=True)
def empty_rollup(clean_state):
    # conftest empties delivery_attempts; the rollup the trigger keeps is ours to empty.
    with db.connection() as conn:
        conn.execute("TRUNCATE delivery_stats")


def attempts(app_id, ago, unit="minute", durations_ms=(), failed=0, outcome="delivered",
             offset_seconds=20):
    """Attempts that finished `ago` periods of `unit` before the current one (offset_seconds
    into that period, by PostgreSQL's clock), one delivered per duration and `failed` failed
    ones, in one statement (as a batch would). Returns the period's start."""
    rows = [(d, outcome) for d in durations_ms] + [(1000, "failed")] * failed
    with db.connection() as conn:
        start = conn.execute(
            "SELECT date_bin(make_interval(secs => %s), now(), timestamptz 'epoch') "
            "- make_interval(secs => %s) AS start",
            (60 if unit == "minute" else 3600, ago * (60 if unit == "minute" else 3600))
        ).fetchone()["start"]
        conn.execute("""
            INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause,
                                           started_at, finished_at, outcome, link_status)
            SELECT %s, %s, 'repo_x', 1, 'scheduler',
                   %s + make_interval(secs => %s) - make_interval(secs => d / 1000.0),
                   %s + make_interval(secs => %s), o,
                   CASE o WHEN 'delivered' THEN 'synced' ELSE 'failed' END
            FROM unnest(%s::float8[], %s::text[]) AS t (d, o)
        """, (uuid.uuid4(), app_id, start, offset_seconds, start, offset_seconds,
              [float(d) for d, _ in rows], [o for _, o in rows]))
    return start


def by_start(stats):
    return {bucket["start"]: bucket for bucket in stats["buckets"]}


def test_minute_buckets_count_exactly_and_empty_minutes_are_zeros(seed):
    a, b = seed.app("Alpha"), seed.app("Beta")
    five = attempts(a, 5, durations_ms=[100, 200, 300], failed=1)
    attempts(b, 5, durations_ms=[400, 500])
    ten = attempts(b, 10, failed=1)
    stats = delivery_stats.deliveries("1h")
    assert len(stats["buckets"]) == 60 and stats["bucket_seconds"] == 60
    starts = [bucket["start"] for bucket in stats["buckets"]]
    assert starts == sorted(starts) and all(
        (later - earlier).total_seconds() == 60 for earlier, later in zip(starts, starts[1:]))
    buckets = by_start(stats)
    assert (buckets[five]["delivered"], buckets[five]["failed"]) == (5, 1)
    assert buckets[five]["success_rate"] == round(5 / 6, 4)
    assert (buckets[ten]["delivered"], buckets[ten]["failed"], buckets[ten]["success_rate"],
            buckets[ten]["p50_ms"]) == (0, 1, 0.0, None)
    others = [bucket for start, bucket in buckets.items() if start not in (five, ten)]
    assert len(others) == 58 and all(
        (x["delivered"], x["failed"], x["success_rate"], x["p50_ms"], x["p95_ms"])
        == (0, 0, None, None, None) for x in others)
    assert stats["totals"]["delivered"] == 5 and stats["totals"]["failed"] == 2
    assert stats["totals"]["success_rate"] == round(5 / 7, 4)


def test_the_app_filter_counts_only_that_app(seed):
    a, b = seed.app("Alpha"), seed.app("Beta")
    five = attempts(a, 5, durations_ms=[100, 200, 300], failed=1)
    attempts(b, 5, durations_ms=[400, 500], failed=4)
    stats = delivery_stats.deliveries("1h", a)
    assert (by_start(stats)[five]["delivered"], by_start(stats)[five]["failed"]) == (3, 1)
    assert (stats["totals"]["delivered"], stats["totals"]["failed"]) == (3, 1)


def test_hour_windows_hold_a_day_and_a_week(seed):
    a = seed.app("Alpha")
    three_hours = attempts(a, 3, "hour", durations_ms=[50] * 4, failed=2, offset_seconds=1800)
    five_days = attempts(a, 5 * 24, "hour", durations_ms=[50] * 7, offset_seconds=1800)
    attempts(a, 8 * 24, "hour", durations_ms=[50] * 9, offset_seconds=1800)  # out of any window
    day = delivery_stats.deliveries("1d")
    week = delivery_stats.deliveries("7d")
    assert len(day["buckets"]) == 24 and len(week["buckets"]) == 168
    assert day["bucket_seconds"] == week["bucket_seconds"] == 3600
    assert (by_start(day)[three_hours]["delivered"], by_start(day)[three_hours]["failed"]) == (4, 2)
    assert five_days not in by_start(day) and day["totals"]["delivered"] == 4
    assert by_start(week)[five_days]["delivered"] == 7
    assert (week["totals"]["delivered"], week["totals"]["failed"]) == (11, 2)


def _exact(values, q):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_percentiles_are_within_the_stated_bucket_error(seed):
    a = seed.app("Alpha")
    durations = [15 + (i * 7919) % 4000 for i in range(300)] + [25_000] * 20
    start = attempts(a, 3, durations_ms=durations, failed=5)
    stats = delivery_stats.deliveries("1h")
    for numbers in (by_start(stats)[start], stats["totals"]):
        for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms")):
            exact = _exact(durations, q)
            assert abs(numbers[key] - exact) <= delivery_stats.MAX_RELATIVE_ERROR * exact, (
                key, numbers[key], exact)


def test_percentile_interpolates_within_a_bucket():
    histogram = [0] * repo.LATENCY_BUCKETS
    assert delivery_stats.percentile(histogram, 0.5) is None
    histogram[0] = 4  # [0, 10) ms
    assert delivery_stats.percentile(histogram, 0.5) == 5
    histogram[0], histogram[-1] = 0, 3  # the open bucket: its lower bound
    assert delivery_stats.percentile(histogram, 0.95) == round(repo.latency_bounds(60)[0])


def test_the_sql_buckets_and_the_python_bounds_agree():
    with db.connection() as conn:
        for bucket in (1, 2, 3, 17, 40, 59, 60):
            lower, upper = repo.latency_bounds(bucket)
            probe = [lower + 0.001 if bucket > 1 else 0.0]
            if upper is not None:
                probe.append(upper - 0.001)
            for ms in probe:
                got = conn.execute("SELECT delivery_latency_bucket(%s) AS b",
                                   (ms,)).fetchone()["b"]
                assert got == bucket, (ms, got, bucket)


def test_only_delivered_and_failed_attempts_count(seed):
    a = seed.app("Alpha")
    for outcome in ("interrupted", "deferred", "sync_failed", "notice_failed"):
        attempts(a, 4, durations_ms=[100], outcome=outcome)
    assert delivery_stats.deliveries("1h")["totals"]["delivered"] == 0


def test_prune_keeps_what_the_windows_show(seed):
    a = seed.app("Alpha")
    attempts(a, 30, "hour", durations_ms=[100], offset_seconds=1800)  # minute row past a day
    attempts(a, 9 * 24, "hour", durations_ms=[100], offset_seconds=1800)  # hour row too
    assert delivery_stats.prune() == 3
    assert delivery_stats.deliveries("7d")["totals"]["delivered"] == 1


def test_json_twin_shape(logged_in, client, seed):
    a = seed.app("Alpha")
    start = attempts(a, 2, durations_ms=[120, 130], failed=1)
    body = client.get(f"/admin/api/stats/deliveries?window=1h&app_id={a}")
    assert body.status_code == 200 and body.headers["Cache-Control"] == "no-store"
    data = body.get_json()["data"]
    assert data["window"] == "1h" and data["app_id"] == a and data["bucket_seconds"] == 60
    assert len(data["buckets"]) == 60 and data["now"].endswith("Z")
    iso = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    bucket = next(b for b in data["buckets"] if b["start"] == iso)
    assert {k: bucket[k] for k in ("delivered", "failed", "success_rate")} == {
        "delivered": 2, "failed": 1, "success_rate": 0.6667}
    assert 100 <= bucket["p50_ms"] <= 160 and 100 <= bucket["p95_ms"] <= 160
    assert data["totals"]["delivered"] == 2
    assert data["percentiles"] == {"method": "histogram", "max_relative_error": 0.25,
                                   "max_error_below_10ms": 10.0}
    assert client.get("/admin/api/stats/deliveries").get_json()["data"]["window"] == "1h"


@pytest.mark.parametrize("query, message", [
    ("window=2h", "window must be one of 1h, 1d, 7d"),
    ("window=1w&app_id=", "window must be one of 1h, 1d, 7d"),
    ("app_id=app_000000000000000000000000", "app_id app_000000000000000000000000 is not an app"),
    ("app_id=" + "x" * 51, "app_id must be an app id like app_<24 hex>"),
])
def test_bad_input_is_a_400_with_one_line(logged_in, client, query, message):
    response = client.get(f"/admin/api/stats/deliveries?{query}")
    assert response.status_code == 400 and response.get_json() == {"error": message}
    page = client.get(f"/admin/charts?{query}")
    assert page.status_code == 400 and message.encode() in page.data.replace(b"&lt;", b"<")\
        .replace(b"&gt;", b">")


def _cells(html, row_id=None):
    rows = re.findall(r'<tr data-start="([^"]+)">(.*?)</tr>', html, re.S)
    return {start: [re.sub(r"<[^>]+>", "", c).strip()
                    for c in re.findall(r'<td class="num [a-z0-9]+">(.*?)</td>', body)]
            for start, body in rows}


def test_page_draws_svg_and_a_table_twin_with_the_same_numbers(logged_in, client, seed):
    a = seed.app("Alpha <b>&")
    start = attempts(a, 2, durations_ms=[1200, 1300, 1400], failed=1)
    html = client.get("/admin/charts?window=1h").get_data(as_text=True)
    assert '<svg class="chart-svg"' in html and 'role="img"' in html and "style=" not in html
    assert html.count('class="bar-delivered"') == 1 and html.count('class="bar-failed"') == 1
    assert "Alpha &lt;b&gt;&amp;" in html and "Alpha <b>" not in html
    data = client.get("/admin/api/stats/deliveries?window=1h").get_json()["data"]
    cells = _cells(html)
    assert len(cells) == 60
    for bucket in data["buckets"]:
        row = next(v for k, v in cells.items() if k.startswith(bucket["start"][:19]))
        rate = "—" if bucket["success_rate"] is None else f"{bucket['success_rate'] * 100:.1f} %"
        p50 = "—" if bucket["p50_ms"] is None else f"{bucket['p50_ms']:,} ms"
        assert row[:4] == [f"{bucket['delivered']:,}", f"{bucket['failed']:,}", rate, p50]
    assert cells[start.astimezone(timezone.utc).isoformat()][:3] == ["3", "1", "75.0 %"]
    assert 'id="charts-table-twin"' in html and "<details" in html


def test_an_empty_window_says_so(logged_in, client, seed):
    a = seed.app("Quiet")
    def since():
        return delivery_stats.deliveries("7d")["buckets"][0]["start"].strftime("%a %d %b %H:%M")
    before = since()
    html = client.get(f"/admin/charts?window=7d&app_id={a}").get_data(as_text=True)
    assert any(f"No delivery attempt ended since {start} UTC for Quiet" in html
               for start in (before, since()))  # an hour may begin meanwhile
    assert "<svg" not in html.split('id="charts-empty"')[1].split("</section>")[0]
    assert html.count("<tr data-start=") == 168


def test_the_delivery_statements_write_the_rollup_as_they_log(seed):
    """The real write path: the statement that ends an attempt (a CTE inserting the log row)
    fires the trigger in the same transaction."""
    from docora_admin.repositories import snapshot_links

    a = seed.app("Alpha")
    delivered = seed.link(a, seed.repo(), status="pending_snapshot", retry_count=0)
    failing = seed.link(a, seed.repo(), status="pending_snapshot", retry_count=0)
    with db.connection() as conn:
        claim = snapshot_links.claim(conn, *delivered, None, 60)
        assert snapshot_links.mark_synced(conn, claim) is not None
        claim = snapshot_links.claim(conn, *failing, None, 60)
        assert snapshot_links.mark_attempt_failed(conn, claim, "HTTP 500", 500, 5, 30)
        # Rolled back with the attempt: nothing counted that the log does not hold.
        conn.execute("SAVEPOINT s")
        conn.execute("""INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt,
                            cause, started_at, outcome, link_status)
                        VALUES (gen_random_uuid(), %s, 'repo_x', 1, 'retry', now(),
                                'delivered', 'synced')""", (a,))
        conn.execute("ROLLBACK TO SAVEPOINT s")
    for window in ("1h", "1d", "7d"):
        totals = delivery_stats.deliveries(window, a)["totals"]
        assert (totals["delivered"], totals["failed"], totals["success_rate"]) == (1, 1, 0.5)
        assert totals["p50_ms"] is not None
