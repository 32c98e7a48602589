"""Delivering alerts from the worker: the alert_deliveries outbox, one row per (alert, channel).

As the sync_failed outbox does (services/control/sync_failed.py): a sender claims due rows with
a lease (FOR UPDATE SKIP LOCKED: two consumers never send the same row), sends, and records the
attempt in the statement after. A failed attempt is tried again after RETRY_SECONDS (30 s),
doubling up to an hour, at most ALERT_MAX_ATTEMPTS times, then given up ('failed'). Whoever
sends, the Huey task queued after a test alert or the one the watchdog queues when a row is due
(a change recorded by a worker, a retry whose backoff is over, a sender that died), the claim
decides. Before claiming, the subject's older unsent alerts are folded into its newest due one
(the flapping cool-down, migration 026).

Secrets: the webhook URL (Slack's carries its token) and the SMTP password never reach a log or
the attempt log: errors are written with the URL replaced by "ALERT_WEBHOOK_URL" and scrubbed.
"""
import json
import logging
import smtplib
import ssl
import time

import redis
import urllib3

from ... import db, redact, runtime
from ...repositories import alerts as alerts_repo
from ..delivery.patience import TRANSIENT, patiently
from ..jobs import job_queue
from . import changes, messages

log = logging.getLogger(__name__)

RETRY_SECONDS = 30
MAX_BACKOFF_S = 3600
CLAIM_BATCH = 20
TIME_BUDGET_S = 60
TIMEOUT_S = 10
RETENTION_DAYS = 30

_http = urllib3.PoolManager(num_pools=2, retries=False,
                            timeout=urllib3.Timeout(connect=TIMEOUT_S, read=TIMEOUT_S))


class ChannelError(Exception):
    def __init__(self, message, http_status=None):
        super().__init__(message)
        self.http_status = http_status


def send_due(time_budget_s=TIME_BUDGET_S):
    """Fold, claim and send the deliveries due now, batch after batch, until none is due or the
    time budget is spent. Returns {sent, retrying, failed}."""
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    started = time.monotonic()
    while time.monotonic() - started < time_budget_s:
        with db.connection() as conn:
            alerts_repo.fold_due(conn)
            batch = alerts_repo.claim_due(conn, CLAIM_BATCH, TIMEOUT_S * 2 + 30)
        for delivery in batch:
            counts[_send(delivery)] += 1
        if len(batch) < CLAIM_BATCH:
            break
    return counts


def _send(delivery):
    settings = runtime.settings().alerts
    where = f"alert {delivery['alert_id']} ({delivery['kind']}) by {delivery['channel']}"
    try:
        if delivery["channel"] == "webhook":
            if not settings.webhook_url:
                raise ChannelError("ALERT_WEBHOOK_URL is no longer set")
            status = _post_webhook(settings.webhook_url, messages.webhook_body(delivery))
        else:
            if not settings.smtp_host:
                raise ChannelError("ALERT_SMTP_HOST is no longer set")
            status = _send_email(settings, delivery)
    except ChannelError as exc:
        return _unsent(delivery, _clean(str(exc), settings), exc.http_status, where)
    patiently(lambda: _in_transaction(alerts_repo.mark_sent, delivery, status), where)
    log.info("%s: sent", where)
    return "sent"


def _clean(error, settings):
    if settings.webhook_url:
        error = error.replace(settings.webhook_url, "ALERT_WEBHOOK_URL")
    if settings.smtp_password:
        error = error.replace(settings.smtp_password, "***")
    return redact.scrub(error)[:500]


def _post_webhook(url, body):
    try:
        answer = _http.request("POST", url, body=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json",
                                        "User-Agent": "docora-admin-alerts"},
                               redirect=False, preload_content=True)
    except urllib3.exceptions.HTTPError as exc:
        # The exception's text names the URL: only its class and reason are kept.
        reason = getattr(exc, "reason", None)
        raise ChannelError(f"webhook not reached: {exc.__class__.__name__}"
                           + (f" ({reason.__class__.__name__})" if reason else "")) from None
    if not 200 <= answer.status < 300:
        excerpt = answer.data[:200].decode("utf-8", "replace").strip()
        raise ChannelError(f"webhook answered HTTP {answer.status}"
                           + (f": {excerpt}" if excerpt else ""), answer.status)
    return answer.status


def _send_email(settings, delivery):
    message = messages.email_message(delivery, settings.email_from, settings.email_to)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_S) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise ChannelError(f"SMTP server answered {exc.smtp_code}: "
                           f"{exc.smtp_error.decode('utf-8', 'replace')[:200]}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ChannelError(f"SMTP failed: {exc.__class__.__name__}: {exc}") from None
    return None


def _unsent(delivery, error, http_status, where):
    settings = runtime.settings().alerts
    delay = min(RETRY_SECONDS * 2 ** max(0, delivery["attempts"] - 1), MAX_BACKOFF_S)
    status = patiently(lambda: _in_transaction(
        alerts_repo.mark_unsent, delivery, error, http_status, settings.max_attempts, delay),
        where)
    if status == "failed":
        log.warning("%s: not delivered after %d attempts, given up: %s", where,
                    delivery["attempts"], error)
        return "failed"
    log.info("%s: not delivered (%s); tried again in %d s", where, error, delay)
    return "retrying"


def _in_transaction(record, *args):
    with db.connection() as conn:
        return record(conn, *args)


def tick():
    """The watchdog's step: check the failed-count rule, record a circuit's close whose alert
    was lost, and queue the sender when a delivery is due. Returns whether it queued."""
    with db.connection() as conn:
        changes.check_failed_rise(conn)
        changes.heal_lost_closes(conn)
    with db.connection() as conn:
        due = alerts_repo.any_due(conn)
    if due:
        job_queue.queue_alert_deliveries()
    return due


def queue_after_commit():
    """Queue the sender now, best effort: should Redis refuse, the watchdog queues it."""
    try:
        job_queue.queue_alert_deliveries()
    except (redis.RedisError, *TRANSIENT) as exc:
        log.warning("alert sender not queued (%s); the watchdog will", exc.__class__.__name__)


def prune():
    """Forget alerts older than RETENTION_DAYS whose deliveries have ended; returns how many."""
    with db.connection() as conn:
        return alerts_repo.prune_before(conn, RETENTION_DAYS)
