"""GET /metrics: Prometheus text format from the official client (prometheus_client).

Two kinds of numbers:
- request latency, measured in each web process (a Histogram by endpoint and method). Under
  gunicorn with several workers, the client's documented multi-process mode shares them: with
  PROMETHEUS_MULTIPROC_DIR set (an empty directory, before the processes start), every worker
  writes its samples to files there and a scrape of any worker merges all of them; gunicorn.conf.py
  tells the client when a worker exits.
- the state of the system (links by status, the queue, running bulk retries, recent delivery
  attempts), read from PostgreSQL and Redis at scrape time by StateCollector, so that every
  process reports the same thing.

Cardinality is bounded: labels are Flask endpoint names (a fixed set, "unmatched" for a 404),
HTTP methods (the usual ones, else "other"), statuses and outcomes from fixed lists. Nothing is
labelled per link, app or repository.
"""
import hmac
import logging
import os
import time

import redis
from flask import g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

from .db import DatabaseUnavailable
from .services.console import metrics_state

log = logging.getLogger(__name__)

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

# Not registered anywhere at import: a scrape builds its own registry (see registry()), because
# in multi-process mode the samples are read from files, never from this object.
REQUEST_LATENCY = Histogram(
    "docora_http_request_duration_seconds",
    "Time to answer an HTTP request, by Flask endpoint and method.",
    ["endpoint", "method"], registry=None)


def multiprocess_dir():
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class StateCollector:
    """Gauges read from PostgreSQL and Redis when scraped. A source that does not answer is
    reported by docora_metrics_source_up 0, and its gauges are left out rather than made up."""

    def collect(self):
        up = GaugeMetricFamily("docora_metrics_source_up",
                               "Whether the source answered this scrape (1) or not (0).",
                               labels=["source"])
        try:
            numbers = metrics_state.database_numbers()
        except DatabaseUnavailable:
            up.add_metric(["postgresql"], 0)
        else:
            up.add_metric(["postgresql"], 1)
            yield from _database_families(numbers)
        try:
            queue = metrics_state.queue_numbers()
        except redis.RedisError:
            up.add_metric(["redis"], 0)
        else:
            up.add_metric(["redis"], 1)
            jobs = GaugeMetricFamily("docora_queue_jobs",
                                     "Jobs in the Huey queue: waiting to run now, or scheduled "
                                     "for later (a backoff).", labels=["state"])
            for state, n in queue.items():
                jobs.add_metric([state], n)
            yield jobs
        yield up


def _database_families(numbers):
    links = GaugeMetricFamily("docora_links", "(app, repository) links by delivery status.",
                              labels=["status"])
    for status, n in numbers["links_by_status"].items():
        links.add_metric([status], n)
    yield links
    yield GaugeMetricFamily("docora_failed_links",
                            "Links whose delivery gave up and wait for an operator.",
                            value=numbers["failed_links"])
    yield GaugeMetricFamily("docora_bulk_operations_running",
                            "Bulk retries running or being cancelled.",
                            value=numbers["running_bulk_operations"])
    attempts = GaugeMetricFamily(
        "docora_delivery_attempts_recent",
        f"Delivery attempts that finished in the last {metrics_state.ATTEMPT_WINDOW_SECONDS} s, "
        "by outcome (from the attempt log, which is pruned: hence a window, not a counter).",
        labels=["outcome"])
    for outcome, n in numbers["recent_attempts"].items():
        attempts.add_metric([outcome], n)
    yield attempts
    held = GaugeMetricFamily("docora_apps_held",
                             "Apps whose deliveries are held, by reason (an operator's pause, an "
                             "open circuit, the app's Retry-After).", labels=["reason"])
    for reason, n in numbers["held_apps"].items():
        held.add_metric([reason], n)
    yield held
    yield GaugeMetricFamily("docora_repository_circuits_open",
                            "Repositories whose git circuit is open (git failed "
                            "REPOSITORY_FAILURE_THRESHOLD times in a row): no git work until "
                            "the cooldown ends.", value=numbers["repository_circuits_open"])
    notices = GaugeMetricFamily("docora_sync_failed_notices",
                                "sync_failed requests to apps, by status: pending (to send or "
                                "retrying), sent, failed (given up).", labels=["status"])
    for status, n in numbers["sync_failed_notices"].items():
        notices.add_metric([status], n)
    yield notices
    alerts = GaugeMetricFamily("docora_alerts",
                               "Alert deliveries by channel and status: pending (to send or "
                               "retrying), sent, failed (given up), folded (a later change of "
                               "the same subject was sent instead).",
                               labels=["channel", "status"])
    for (channel, status), n in numbers["alert_deliveries"].items():
        alerts.add_metric([channel, status], n)
    yield alerts
    attempts = GaugeMetricFamily("docora_alert_attempts",
                                 "Attempts to deliver an alert, by channel and result (sent or "
                                 "failed), over the alert log (kept 30 days).",
                                 labels=["channel", "result"])
    for (channel, result), n in numbers["alert_attempts"].items():
        attempts.add_metric([channel, result], n)
    yield attempts


def registry():
    """A registry for one scrape: request latency (merged from every process's files in
    multi-process mode) and the state gauges."""
    scrape = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape.register(REQUEST_LATENCY)
    scrape.register(StateCollector())
    return scrape


def exposition():
    """(body bytes, content type) of a scrape."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def token_matches(expected, authorization):
    """Whether an Authorization header carries `Bearer <expected>` (constant-time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                               expected.encode())


def _start_timer():
    g.docora_request_started = time.perf_counter()


def _observe(response):
    started = g.pop("docora_request_started", None)
    if started is not None:
        endpoint = request.endpoint or "unmatched"
        method = request.method if request.method in _METHODS else "other"
        REQUEST_LATENCY.labels(endpoint, method).observe(time.perf_counter() - started)
    return response


def init_app(app):
    # First before_request and last after_request registered here, so the timing covers the
    # request guard, the login rule and the view.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_observe)
