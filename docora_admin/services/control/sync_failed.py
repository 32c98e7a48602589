"""Sending the sync_failed outbox: one signed POST {base_url}/sync_failed per (repository, app,
circuit episode), written when a repository's git circuit opened (services/repository_circuit).

Durable and sent once: the row is in PostgreSQL before anything is sent; a sender claims it with
a lease (FOR UPDATE SKIP LOCKED, so two consumers on two machines never both send it), and marks
it sent in the statement right after the app's 2xx. Only a process dying between the app's
answer and that commit makes it go again, once its lease has run out (at-least-once across a
crash, never otherwise). Whoever sends, the Huey task queued after the circuit opened or the
one the watchdog queues for any row still due (a worker killed right after the commit, Redis
emptied), the claim decides.

A request that fails (app down, non-2xx) is tried again after RETRY_BACKOFF_SECONDS, doubling,
up to MAX_SENDS requests, then the notice is recorded as failed. The app's holds apply: a
paused (or deferred, or circuit-open) app's notices wait for its release. Each notice's end is
logged in the attempt log of the app's link (outcome sync_failed, or notice_failed).
"""
import logging
import time

import redis

from ... import crypto, db, redact, runtime
from ...repositories import sync_failed_notices as notices_repo
from ..jobs import job_queue
from ..delivery.payloads import iso_timestamp
from ..delivery.webhook_client import DeliveryError, WebhookClient
from ..delivery.patience import TRANSIENT, patiently

log = logging.getLogger(__name__)

MAX_SENDS = 5
MAX_BACKOFF_S = 3600
CLAIM_BATCH = 20
TIME_BUDGET_S = 60


def payload(notice):
    """The contract's body (DOCORA_CONTRACT.md §1), keys in its order. retry_count is the app's
    link's retry_count (its failed attempts in the current episode) when the circuit opened."""
    return {
        "event": "sync_failed",
        "repository": {"repository_id": notice["repository_id"],
                       "github_url": redact.scrub(notice["github_url"]),
                       "owner": notice["owner"], "name": notice["name"]},
        "error": {"type": "git_failure", "message": notice["error"]},
        "circuit_breaker": {"status": "open",
                            "consecutive_failures": notice["consecutive_failures"],
                            "threshold": notice["threshold"],
                            "cooldown_until": iso_timestamp(
                                notice["cooldown_until"].timestamp())},
        "retry_count": notice["retry_count"],
        "timestamp": iso_timestamp(),
    }


def _lease_seconds():
    # Longer than one request can take: a live sender is never overtaken.
    return runtime.settings().delivery_timeout_s + 30


def send_due(time_budget_s=TIME_BUDGET_S):
    """Claim and send the notices due now, batch after batch, until none is due or the time
    budget is spent. Returns {sent, retrying, failed}."""
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    started = time.monotonic()
    while time.monotonic() - started < time_budget_s:
        with db.connection() as conn:
            batch = notices_repo.claim_due(conn, CLAIM_BATCH, _lease_seconds())
        for notice in batch:
            counts[_send(notice)] += 1
        if len(batch) < CLAIM_BATCH:
            break
    return counts


def _send(notice):
    settings = runtime.settings()
    where = f"sync_failed {notice['app_id']}/{notice['repository_id']}"
    try:
        if not notice["client_auth_key_encrypted"]:
            raise DeliveryError("app has no client auth key")
        key = crypto.decrypt(settings.encryption_key, notice["client_auth_key_encrypted"])
        client = WebhookClient(notice["base_url"], notice["app_id"], key,
                               settings.delivery_timeout_s)
        answer = client.post("sync_failed", payload(notice))
    except (DeliveryError, crypto.DecryptionError, ValueError) as exc:
        return _unsent(notice, redact.scrub(str(exc))[:500],
                       getattr(exc, "http_status", None), where)
    # The app has it: marked in the next statement (a crash before it is the only way it goes
    # twice). Should PostgreSQL not answer now, the lease runs out and it is sent again.
    patiently(lambda: _in_transaction(
        notices_repo.mark_sent, notice, answer.status, notice["error"]), where)
    log.info("%s: sent (episode %d)", where, notice["episode"])
    return "sent"


def _unsent(notice, error, http_status, where):
    delay = min(runtime.settings().retry_backoff_seconds * 2 ** max(0, notice["sends"] - 1),
                MAX_BACKOFF_S)
    status = patiently(lambda: _in_transaction(
        notices_repo.mark_unsent, notice, error, http_status, MAX_SENDS, delay), where)
    if status == "failed":
        log.warning("%s: not delivered after %d requests, given up: %s", where,
                    notice["sends"], error)
        return "failed"
    log.info("%s: not delivered (%s); tried again in %d s", where, error, delay)
    return "retrying"


def _in_transaction(record, *args):
    with db.connection() as conn:
        return record(conn, *args)


def prune():
    """Forget notices that ended more than ATTEMPT_LOG_RETENTION_DAYS ago (the hourly prune of
    the attempt log); returns how many."""
    with db.connection() as conn:
        return notices_repo.prune_ended_before(conn, runtime.settings().attempt_log_retention_days)


def tick():
    """The watchdog's step: queue the sender when a notice is due (one whose first send was
    never queued or run, a retry whose backoff is over, a claim whose sender died). Returns
    whether it queued."""
    with db.connection() as conn:
        due = notices_repo.any_due(conn)
    if due:
        job_queue.queue_sync_failed_notices()
    return due


def queue_after_commit():
    """Queue the sender now, best effort: should Redis refuse, the watchdog queues it."""
    try:
        job_queue.queue_sync_failed_notices()
    except (redis.RedisError, *TRANSIENT) as exc:
        log.warning("sync_failed sender not queued (%s); the watchdog will",
                    exc.__class__.__name__)
