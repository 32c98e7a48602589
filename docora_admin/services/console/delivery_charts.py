"""The Charts page's SVG, as numbers a template draws: bars of delivered and failed attempts per
period, and lines of p50/p95 delivery time. Plain geometry from delivery_stats.deliveries(); no
chart library, nothing the browser runs."""
from datetime import timezone

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 26
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
X_LABELS = 6


def nice_max(value):
    """The smallest 1, 2 or 5 × 10^k at least `value` (1 for nothing), for an axis's top."""
    if not value or value <= 1:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _label(moment, bucket_seconds, window):
    moment = moment.astimezone(timezone.utc)
    if window == "7d":
        return moment.strftime("%a %d %H:%M")
    return moment.strftime("%H:%M")


def _x_labels(stats):
    buckets = stats["buckets"]
    every = max(1, len(buckets) // X_LABELS)
    width = PLOT_W / len(buckets)
    return [{"x": round(LEFT + i * width, 1),
             "text": _label(bucket["start"], stats["bucket_seconds"], stats["window"])}
            for i, bucket in enumerate(buckets) if i % every == 0]


def duration_text(ms):
    """'750 ms', '2.5 s', '20 s': short enough for the axis."""
    return f"{ms:,} ms" if ms < 1000 else f"{ms / 1000:,g} s"


def _y_ticks(top, text=lambda value: f"{value:,}"):
    return [{"y": round(TOP + PLOT_H - PLOT_H * value / top, 1), "text": text(value)}
            for value in (0, top // 2 if top >= 2 else None, top) if value is not None]


def volume_chart(stats):
    """{bars: [{x, width, delivered_y, delivered_h, failed_y, failed_h}], y_ticks, x_labels,
    top}: stacked bars, delivered at the bottom, failed on top."""
    buckets = stats["buckets"]
    top = nice_max(max(b["delivered"] + b["failed"] for b in buckets))
    width = PLOT_W / len(buckets)
    bars = []
    for i, bucket in enumerate(buckets):
        delivered_h = PLOT_H * bucket["delivered"] / top
        failed_h = PLOT_H * bucket["failed"] / top
        base = TOP + PLOT_H
        bars.append({"x": round(LEFT + i * width + width * 0.1, 2),
                     "width": round(width * 0.8, 2),
                     "delivered_y": round(base - delivered_h, 2),
                     "delivered_h": round(delivered_h, 2),
                     "failed_y": round(base - delivered_h - failed_h, 2),
                     "failed_h": round(failed_h, 2)})
    return {"bars": bars, "y_ticks": _y_ticks(top), "x_labels": _x_labels(stats), "top": top}


def _segments(stats, key, top):
    """Runs of consecutive periods that have a value, as polyline points and dots."""
    width = PLOT_W / len(stats["buckets"])
    segments, current = [], []
    for i, bucket in enumerate(stats["buckets"]):
        value = bucket[key]
        if value is None:
            if current:
                segments.append(current)
            current = []
            continue
        current.append((round(LEFT + (i + 0.5) * width, 2),
                        round(TOP + PLOT_H - PLOT_H * value / top, 2)))
    if current:
        segments.append(current)
    return [{"points": " ".join(f"{x},{y}" for x, y in seg),
             "dots": [{"x": x, "y": y} for x, y in seg]} for seg in segments]


def latency_chart(stats):
    """{p50: [segment], p95: [segment], y_ticks, x_labels, top}: one line per run of periods
    with delivered attempts (a gap where a period delivered nothing)."""
    top = nice_max(max((b["p95_ms"] or 0) for b in stats["buckets"]))
    return {"p50": _segments(stats, "p50_ms", top), "p95": _segments(stats, "p95_ms", top),
            "y_ticks": _y_ticks(top, duration_text), "x_labels": _x_labels(stats), "top": top}


def geometry():
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "top": TOP,
            "plot_w": PLOT_W, "plot_h": PLOT_H, "bottom_y": TOP + PLOT_H}
