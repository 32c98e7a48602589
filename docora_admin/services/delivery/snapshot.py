"""The snapshot job: claim a link, fetch and scan its repository, deliver the difference to the
app, record how the attempt ended. What a retry queues.

How an attempt ends decides what happens to the link, always in one statement with its
attempt-log row (repositories.snapshot_links):
- delivered → synced;
- the app, git or the data failed → retry_count + 1; failed at MAX_RETRY_ATTEMPTS, else a new job
  scheduled after the backoff;
- an outage of our own (PostgreSQL or Redis) cut it short → given back to pending_snapshot and
  queued again, not counted: an outage is not the app's fault.
A git failure also counts in the repository's git circuit, and while that circuit is open a job
does no git work: its link is given back, held until the cooldown ends, not counted
(services/control/repository_circuit.py).
PostgreSQL being down when the job starts or ends is waited out here, with backoff, for up to
JOB_LEASE_SECONDS; past that the sweeper finds the link (services/jobs/sweeper.py).

Where delivery control (per-app pause, limits, Retry-After) hooks in, one call site each:
- before a job claims its link: the top of run_snapshot();
- around each request to the app: WebhookClient.post() (services/delivery/webhook_client.py), the
only call
  that sends one; it returns the response (status, headers) and its DeliveryError carries
  http_status and headers;
- where an attempt's outcome is known: snapshot_links.mark_synced() for delivered (it ends the
  app's failure streak in the same statement) and _failed() for failed.
"""
import logging

import redis

from ... import crypto, db, redact, runtime
from ...repositories import snapshot_links
from ..retries import bulk_progress
from ..alerts import changes as alert_changes
from ..control import delivery_control, repository_circuit, sync_failed
from . import exchange as exchanges
from . import git_fetch, leases
from ..jobs import job_queue
from ..control.app_limits import RateLimited
from .webhook_client import DeliveryError
from .patience import TRANSIENT
from .patience import patiently as _patiently
from .requeue import best_effort as _best_effort, given_back as _given_back, later as _later
from .requeue import schedule as _schedule
from .snapshot_delivery import ClaimLost, Sent, SnapshotError, deliver

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600


def backoff_seconds(attempt, base):
    """Delay before attempt `attempt + 1`: base, 2×base, 4×base, … seconds, at most an hour."""
    return min(base * 2 ** max(0, attempt - 1), MAX_BACKOFF_S)


def run_snapshot(app_id, repository_id, operation_id=None, generation=None):
    """Sync one link for the job queued for `generation`; return the link's new status, or None
    when there was nothing to claim (a stale or duplicate job)."""
    lease = runtime.settings().job_lease_seconds

    def claim():
        # Most jobs: one statement claims the link unless the app is held and reads what the
        # delivery needs.
        with db.autocommit_connection() as conn:
            row = snapshot_links.claim_unless_held(conn, app_id, repository_id, generation, lease)
        if not row["held"]:
            if row["id"] is None:
                return None, None, None
            return row, row, delivery_control.admission(row)
        with db.connection() as conn:
            # An app whose deliveries are held (paused, circuit open, asked to wait) is not
            # attempted: its link stays pending until the app is released
            # (services/control/delivery_control.py); an open circuit's probe is taken here.
            admission = delivery_control.admit(conn, app_id)
            if admission is None:
                return None, None, None
            claimed = snapshot_links.claim(conn, app_id, repository_id, generation, lease)
            if claimed is None:
                conn.rollback()  # a probe slot taken for a stale job is given back
                return None, None, None
            return claimed, snapshot_links.delivery_context(conn, app_id, repository_id), \
                admission

    where = f"snapshot {app_id}/{repository_id}"
    claimed, context, admission = _patiently(claim, where)
    if claimed is None:
        return None
    leases.hold(claimed)
    try:
        # A repository whose git circuit is open gets no git work: the link waits, held, for
        # the cooldown's end (services/control/repository_circuit.py).
        gate, due = _patiently(lambda: repository_circuit.gate(db.connection, claimed, context),
                               where)
        if gate.held:
            if due is not None:
                _schedule(due, where)
            return "pending_snapshot"
        return _attempt(claimed, context, admission, gate.probe)
    finally:
        leases.release(claimed)


def _attempt(claimed, context, admission, repository_probe=False):
    limiter = admission.limiter(context["app_id"])
    try:
        return _attempt_with(claimed, context, admission, limiter, repository_probe)
    finally:
        # The app's concurrency slot goes back once the outcome is recorded, not before (a
        # delivered attempt has given it back already, with its other Redis work).
        _best_effort(limiter.release, f"snapshot {context['app_id']}")


def _attempt_with(claimed, context, admission, limiter, repository_probe=False):
    sent = Sent()
    where = f"snapshot {context['app_id']}/{context['repository_id']}"
    try:
        delivered = deliver(claimed, context, sent, where, limiter,
                            give_back=job_queue.other_work_waiting)
    except ClaimLost:
        log.warning("%s: stopped, its link was given to another job during an outage", where)
        return None
    except git_fetch.RepositoryFetching:
        return _given_back(claimed, where)
    except git_fetch.RepositoryBusy:
        return _later(claimed, where)
    except RateLimited as exc:  # the app's turn is seconds away: free the worker meanwhile
        return _later(claimed, where, max(1, round(exc.wait_s)))
    except TRANSIENT as exc:
        return _interrupted(claimed, context, sent, exc, where)
    except DeliveryError as exc:
        _git_went_through(context, where)  # the app answered: the fetch before it worked
        wait = delivery_control.retry_after_seconds(exc.retry_after)
        if wait is not None:
            return _deferred(claimed, context, sent, str(exc), exc.http_status, wait, where,
                             exc.exchange)
        return _failed(claimed, context, sent, str(exc), exc.http_status, where,
                       app_at_fault=True, probe=admission.probe, exchange=exc.exchange)
    except git_fetch.GitError as exc:  # counted in the repository's git circuit too
        return _failed(claimed, context, sent, str(exc), None, where, git_failure=True,
                       repository_probe=repository_probe)
    except (SnapshotError, crypto.DecryptionError) as exc:
        return _failed(claimed, context, sent, str(exc), None, where)
    except Exception as exc:  # never leave a link in `scanning`
        log.exception("%s failed unexpectedly", where)
        return _failed(claimed, context, sent, f"internal error: {exc.__class__.__name__}", None,
                       where)

    details = exchanges.stored(sent.exchange)

    def record():
        sent_files, deleted = delivered.rest()
        if delivered.snapshot_saved:  # the usual case: one statement, no transaction
            with db.autocommit_connection() as conn:
                ended = snapshot_links.mark_synced(conn, claimed, sent.files, sent.bytes,
                                                   sent_files, deleted, sent.skipped, details)
        else:
            with db.connection() as conn:
                delivered.record_snapshot(conn)
                ended = snapshot_links.mark_synced(conn, claimed, sent.files, sent.bytes,
                                                   sent_files, deleted, sent.skipped, details)
        return ended, ended is not None and ended["circuit_closed"]

    try:
        ended, circuit_closed = _patiently(record, where)
    finally:
        delivered.close()
    # What is left in Redis, in one round trip, all of it self-healing should Redis refuse: the
    # journal's written entries (the link's next job writes them again), the app's concurrency
    # slots and unused turns (they expire), the operation's live counter (the sweeper rewrites
    # it from PostgreSQL).
    after = runtime.redis_client().pipeline(transaction=False)
    delivered.settled(after)
    limiter.release(after)
    if ended is not None:
        _report_to_operation(ended["retry_operation_id"], delivered=True, pipeline=after)
    try:
        after.execute(raise_on_error=False)
    except redis.RedisError as exc:  # each heals: see above
        log.warning("%s: Redis did not take the delivered attempt's follow-up (%s)", where,
                    exc.__class__.__name__)
    if ended is None:
        log.warning("%s: delivered, but the claim had been given to another job", where)
        return None
    if circuit_closed:
        log.warning("circuit closed for %s: a delivery went through", context["app_id"])
        alert_changes.closed_by_delivery(context["app_id"], ended["circuit_opened_at"])
        _best_effort(lambda: delivery_control.release(context["app_id"]), where)
    _git_went_through(context, where)
    log.debug("%s synced: %d deletes, %d creates, %d updates", where, sent.deletes,
              sent.creates, sent.updates)
    return "synced"


def _failed(claimed, context, sent, error, http_status, where, app_at_fault=False, probe=False,
            git_failure=False, repository_probe=False, exchange=None):
    """Count the attempt against the link; `app_at_fault` (the app answered badly or not at all,
    rather than git or our data failing) also counts it in the app's circuit breaker, `probe`
    says the attempt was the open circuit's probe. `git_failure` counts it in the repository's
    git circuit (its opening and sync_failed notices commit with the attempt),
    `repository_probe` says the attempt was that circuit's half-open probe; `exchange` the
    request that failed."""
    settings = runtime.settings()
    error = redact.scrub(error)[:500]
    details = exchanges.stored(exchange or sent.exchange)

    def record():
        with db.connection() as conn:
            ended = job_queue.noted(conn, snapshot_links.mark_attempt_failed(
                conn, claimed, error, http_status, settings.max_retry_attempts,
                backoff_seconds(claimed["retry_count"] + 1, settings.retry_backoff_seconds),
                sent.files, sent.bytes, sent.skipped, details))
            if ended is not None and app_at_fault:
                delivery_control.record_failed(conn, context["app_id"], error, probe)
            circuit = None
            if ended is not None and git_failure:
                circuit = repository_circuit.record_git_failure(
                    conn, context["repository_id"], error, repository_probe)
            return ended, circuit

    ended, circuit = _patiently(record, where)
    if circuit is not None and circuit["opened"]:
        sync_failed.queue_after_commit()
    if ended is None:
        return None
    # A link that gives up is worth a line; an attempt that will be retried is not.
    log.log(logging.INFO if ended["status"] == "failed" else logging.DEBUG, "%s: %s (now %s)",
            where, error, ended["status"])
    if ended["status"] == "failed":
        _report_to_operation(ended["retry_operation_id"], delivered=False)
    else:
        _schedule(ended, where)
    return ended["status"]


def _interrupted(claimed, context, sent, exc, where):
    reason = ("database unavailable" if isinstance(exc, db.DatabaseUnavailable)
              else "Redis unavailable")
    log.warning("%s interrupted: %s; queued again", where, reason)

    def record():
        with db.connection() as conn:
            return job_queue.noted(conn, snapshot_links.give_back(
                conn, claimed, "interrupted", f"interrupted: {reason}; queued again",
                files=sent.files, bytes_sent=sent.bytes,
                details=exchanges.stored(sent.exchange)))

    requeue = _patiently(record, where)
    if requeue is not None:
        _best_effort(lambda: (job_queue.push_snapshot_jobs(
            [(requeue["app_id"], requeue["repository_id"], requeue["retry_operation_id"],
              requeue["job_generation"])], requeue["stamp"]),
            job_queue.pushed(requeue.get("mark"))), where)
    return "pending_snapshot"


def _deferred(claimed, context, sent, error, http_status, wait, where, exchange=None):
    """The app answered 429/503 with Retry-After: hold the app's deliveries that long and give
    the link back, due then; the attempt is logged as deferred and not counted."""
    error = redact.scrub(f"{error}; the app asked to wait {wait} s (Retry-After)")[:500]

    def record():
        with db.connection() as conn:
            due = job_queue.noted(conn, snapshot_links.give_back(
                conn, claimed, "deferred", error, http_status, wait, sent.files, sent.bytes,
                exchanges.stored(exchange or sent.exchange)))
            if due is not None:
                delivery_control.record_deferral(conn, context["app_id"], wait)
            return due

    due = _patiently(record, where)
    if due is not None:
        _schedule(due, where)
    return "pending_snapshot"


def _git_went_through(context, where):
    """The attempt got past git: end the repository's streak of git failures (and close its
    circuit) when the claim saw one; a healthy repository costs nothing here."""
    if context.get("repository_failures") or context.get("repository_circuit_tripped"):
        _best_effort(lambda: _patiently(
            lambda: repository_circuit.record_success(context["repository_id"]), where), where)


def _report_to_operation(operation_id, delivered, pipeline=None):
    """Live counters of the bulk operation whose episode just ended (on `pipeline` when given).
    PostgreSQL holds the truth (the attempt log); the sweeper rewrites these from it, so a lost
    increment heals."""
    if not operation_id:
        return
    try:
        bulk_progress.increment_deliveries(operation_id, delivered=int(delivered),
                                           delivery_failed=int(not delivered),
                                           pipeline=pipeline)
    except redis.RedisError:
        pass
