"""The snapshot job: claim a link, fetch and scan its repository, deliver the difference to the
app, record how the attempt ended. What a retry queues.

How an attempt ends decides what happens to the link, always in one statement with its
attempt-log row (repositories.snapshot_links):
- delivered → synced;
- the app, git or the data failed → retry_count + 1; failed at MAX_RETRY_ATTEMPTS, else a new job
  scheduled after the backoff;
- an outage of our own (PostgreSQL or Redis) cut it short → given back to pending_snapshot and
  queued again, not counted: an outage is not the app's fault.
PostgreSQL being down when the job starts or ends is waited out here, with backoff, for up to
JOB_LEASE_SECONDS; past that the sweeper finds the link (services/sweeper.py).

Where delivery control (per-app pause, limits, Retry-After) hooks in, one call site each:
- before a job claims its link: the top of run_snapshot();
- around each request to the app: WebhookClient.post() (services/delivery.py), the only call
  that sends one; it returns the response (status, headers) and its DeliveryError carries
  http_status and headers;
- where an attempt's outcome is known: _attempt() for delivered (after mark_synced) and
  _failed() for failed.
"""
import logging
import threading
import time
from dataclasses import dataclass

import redis

from .. import crypto, db, redact, runtime
from ..repositories import delivered_files, snapshot_links
from . import (acknowledgements, bulk_progress, delivery_control, git_fetch, job_queue, leases,
               shared_checkout)
from .app_limits import RateLimited
from .delivery import DeliveryError, WebhookClient, file_payloads

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600
BUSY_DELAY_S = 3  # a link whose repository another job is fetching is tried again after this
PATIENCE_S = 600  # how long a job waits out an outage of PostgreSQL or Redis
STREAM_MIN_FILES = 100  # a link with fewer files to send sends them one at a time
# Our own services failing: wait and try again rather than count an attempt against the app.
TRANSIENT = (db.DatabaseUnavailable, redis.ConnectionError, redis.TimeoutError)


class SnapshotError(Exception):
    """A failure to record on the link as last_error."""


@dataclass
class Sent:
    """What one attempt delivered before it ended."""
    files: int = 0
    deletes: int = 0
    creates: int = 0
    updates: int = 0
    bytes: int = 0


def backoff_seconds(attempt, base):
    """Delay before attempt `attempt + 1`: base, 2×base, 4×base, … seconds, at most an hour."""
    return min(base * 2 ** max(0, attempt - 1), MAX_BACKOFF_S)


def _patiently(action, what, waited=None):
    """Run `action`; while PostgreSQL or Redis is unavailable, try again every 0.25 s doubling
    to 2 s for up to PATIENCE_S, then let the error out. `waited` (a list) is told whether it
    had to wait.

    A job waits out an outage rather than give up: what it holds (a message taken off the
    queue, a file the app acknowledged but not yet recorded) is safest with it, and every worker
    waiting keeps the queue in Redis until PostgreSQL is back."""
    deadline = time.monotonic() + PATIENCE_S
    delay, told = 0.25, False
    while True:
        try:
            return action()
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise
            if not told:
                log.warning("%s: %s unavailable, trying again", what,
                            "database" if isinstance(exc, db.DatabaseUnavailable) else "Redis")
                told = True
            if waited is not None:
                waited.append(delay)
            time.sleep(delay)
            delay = min(delay * 2, 2)


class ClaimLost(Exception):
    """The job's link was given to another job while this one waited out an outage."""


def run_snapshot(app_id, repository_id, operation_id=None, generation=None):
    """Sync one link for the job queued for `generation`; return the link's new status, or None
    when there was nothing to claim (a stale or duplicate job)."""
    lease = runtime.settings().job_lease_seconds

    def claim():
        with db.connection() as conn:
            # An app whose deliveries are held (paused, circuit open, asked to wait) is not
            # attempted: its link stays pending until the app is released
            # (services/delivery_control.py).
            admission = delivery_control.admit(conn, app_id)
            if admission is None:
                return None, None, None
            claimed = snapshot_links.claim(conn, app_id, repository_id, generation, lease)
            if claimed is None:
                conn.rollback()  # a probe slot taken for a stale job is given back
                return None, None, None
            return claimed, snapshot_links.delivery_context(conn, app_id, repository_id), \
                admission

    claimed, context, admission = _patiently(claim, f"snapshot {app_id}/{repository_id}")
    if claimed is None:
        return None
    leases.hold(claimed)
    try:
        return _attempt(claimed, context, admission)
    finally:
        leases.release(claimed)


def _attempt(claimed, context, admission):
    limiter = admission.limiter(context["app_id"])
    try:
        return _attempt_with(claimed, context, admission, limiter)
    finally:
        # The app's concurrency slot goes back once the outcome is recorded, not before.
        _best_effort(limiter.release, f"snapshot {context['app_id']}")


def _attempt_with(claimed, context, admission, limiter):
    sent = Sent()
    where = f"snapshot {context['app_id']}/{context['repository_id']}"
    try:
        _sync(claimed, context, sent, where, limiter)
    except ClaimLost:
        log.warning("%s: stopped, its link was given to another job during an outage", where)
        return None
    except git_fetch.RepositoryBusy:
        return _later(claimed, where)
    except RateLimited as exc:  # the app's turn is seconds away: free the worker meanwhile
        return _later(claimed, where, max(1, round(exc.wait_s)))
    except TRANSIENT as exc:
        return _interrupted(claimed, context, sent, exc, where)
    except DeliveryError as exc:
        wait = delivery_control.retry_after_seconds(exc.retry_after)
        if wait is not None:
            return _deferred(claimed, context, sent, str(exc), exc.http_status, wait, where)
        return _failed(claimed, context, sent, str(exc), exc.http_status, where,
                       app_at_fault=True, probe=admission.probe)
    except (SnapshotError, git_fetch.GitError, crypto.DecryptionError) as exc:
        return _failed(claimed, context, sent, str(exc), None, where)
    except Exception as exc:  # never leave a link in `scanning`
        log.exception("%s failed unexpectedly", where)
        return _failed(claimed, context, sent, f"internal error: {exc.__class__.__name__}", None,
                       where)

    def record():
        with db.connection() as conn:
            ended = snapshot_links.mark_synced(conn, claimed, sent.files, sent.bytes)
            closed = (ended is not None
                      and delivery_control.record_delivered(conn, context["app_id"]))
            return ended, closed

    ended, circuit_closed = _patiently(record, where)
    if ended is None:
        log.warning("%s: delivered, but the claim had been given to another job", where)
        return None
    if circuit_closed:
        log.warning("circuit closed for %s: a delivery went through", context["app_id"])
        _best_effort(lambda: delivery_control.release(context["app_id"]), where)
    log.debug("%s synced: %d deletes, %d creates, %d updates", where, sent.deletes,
              sent.creates, sent.updates)
    _report_to_operation(ended["retry_operation_id"], delivered=True)
    return "synced"


def _failed(claimed, context, sent, error, http_status, where, app_at_fault=False, probe=False):
    """Count the attempt against the link; `app_at_fault` (the app answered badly or not at all,
    rather than git or our data failing) also counts it in the app's circuit breaker, `probe`
    says the attempt was the open circuit's probe."""
    settings = runtime.settings()
    error = redact.scrub(error)[:500]

    def record():
        with db.connection() as conn:
            ended = snapshot_links.mark_attempt_failed(
                conn, claimed, error, http_status, settings.max_retry_attempts,
                backoff_seconds(claimed["retry_count"] + 1, settings.retry_backoff_seconds),
                sent.files, sent.bytes)
            if ended is not None and app_at_fault:
                delivery_control.record_failed(conn, context["app_id"], error, probe)
            return ended

    ended = _patiently(record, where)
    if ended is None:
        return None
    log.log(logging.INFO if ended["status"] == "failed" else logging.DEBUG, "%s: %s (now %s)", where, error, ended["status"])
    if ended["status"] == "failed":
        _report_to_operation(ended["retry_operation_id"], delivered=False)
    else:
        _best_effort(lambda: job_queue.schedule_snapshot(
            ended["app_id"], ended["repository_id"], ended["retry_operation_id"],
            ended["job_generation"], ended["next_attempt_at"]), where)
    return ended["status"]


def _interrupted(claimed, context, sent, exc, where):
    reason = ("database unavailable" if isinstance(exc, db.DatabaseUnavailable)
              else "Redis unavailable")
    log.warning("%s interrupted: %s; queued again", where, reason)

    def record():
        with db.connection() as conn:
            return snapshot_links.mark_interrupted(
                conn, claimed, f"interrupted: {reason}; queued again", sent.files, sent.bytes)

    requeue = _patiently(record, where)
    if requeue is not None:
        _best_effort(lambda: job_queue.push_snapshot_jobs(
            [(requeue["app_id"], requeue["repository_id"], requeue["retry_operation_id"],
              requeue["job_generation"])], requeue["stamp"]), where)
    return "pending_snapshot"


def _deferred(claimed, context, sent, error, http_status, wait, where):
    """The app answered 429/503 with Retry-After: hold the app's deliveries that long and give
    the link back, due then; the attempt is logged as deferred and not counted."""
    error = redact.scrub(f"{error}; the app asked to wait {wait} s (Retry-After)")[:500]

    def record():
        with db.connection() as conn:
            due = snapshot_links.mark_deferred(conn, claimed, error, http_status, wait,
                                               sent.files, sent.bytes)
            if due is not None:
                delivery_control.record_deferral(conn, context["app_id"], wait)
            return due

    due = _patiently(record, where)
    if due is not None:
        _best_effort(lambda: job_queue.schedule_snapshot(
            due["app_id"], due["repository_id"], due["retry_operation_id"],
            due["job_generation"], due["next_attempt_at"]), where)
    return "pending_snapshot"


def _later(claimed, where, delay=BUSY_DELAY_S):
    """Another job is fetching the same repository, or the app's next turn is seconds away:
    give the link back, due `delay` seconds later (a new generation, scheduled), and free this
    worker. Nothing is counted or logged."""
    def record():
        with db.connection() as conn:
            return snapshot_links.release_claim(conn, claimed, delay)

    due = _patiently(record, where)
    if due is not None:
        _best_effort(lambda: job_queue.schedule_snapshot(
            due["app_id"], due["repository_id"], due["retry_operation_id"],
            due["job_generation"], due["next_attempt_at"]), where)
    return "pending_snapshot"


def _best_effort(action, where):
    # Queueing after the commit: should Redis refuse now, the link is due and the sweeper queues
    # it once Redis answers.
    try:
        action()
    except redis.RedisError as exc:
        log.warning("%s: not queued (%s); the sweeper will", where, exc.__class__.__name__)


def _report_to_operation(operation_id, delivered):
    """Live counters of the bulk operation whose episode just ended. PostgreSQL holds the truth
    (the attempt log); the sweeper rewrites these from it, so a lost increment heals."""
    if not operation_id:
        return
    try:
        bulk_progress.increment_deliveries(operation_id, delivered=int(delivered),
                                           delivery_failed=int(not delivered))
    except redis.RedisError:
        pass


def _sync(claimed, context, sent, where, limiter=None):
    """Fetch, scan, diff and deliver, counting into `sent` as files are acknowledged.

    What the app acknowledged is noted at once and written to PostgreSQL in batches
    (services/acknowledgements.py), waiting out an outage of Redis or PostgreSQL (a file the app
    has, recorded late, is not sent again by the next job); after such a wait the job goes on
    only if its claim still holds."""
    settings = runtime.settings()
    if not context["client_auth_key_encrypted"]:
        raise SnapshotError("app has no client auth key")
    key = crypto.decrypt(settings.encryption_key, context["client_auth_key_encrypted"])
    token = (crypto.decrypt(settings.encryption_key, context["github_token_encrypted"])
             if context["github_token_encrypted"] else None)
    app_id, repository_id = context["app_id"], context["repository_id"]

    def patiently(action):
        waited = []
        result = _patiently(action, where, waited)
        if waited and not _patiently(lambda: _in_transaction(
                lambda conn: snapshot_links.holds_claim(conn, claimed)), where):
            raise ClaimLost()
        return result

    already = _delivered_so_far(app_id, repository_id, where)
    # The checkout is shared by every app of the repository (services/shared_checkout.py): what
    # must be sent is read under its lock, delivered after.
    commit, contents = shared_checkout.read(
        repository_id, context["github_url"], token, claimed["due_at"].timestamp(),
        wanted=lambda files: [f for f in files if already.get(f.path) != f.sha])
    files = commit.files
    current = {f.path for f in files}
    creates = [f for f in files if f.path not in already]
    updates = [f for f in files if f.path in already and already[f.path] != f.sha]
    deletes = sorted(path for path in already if path not in current)

    client = WebhookClient(context["base_url"], app_id, key, settings.delivery_timeout_s,
                           limiter)
    repository = {"repository_id": repository_id, "github_url": redact.scrub(
        context["github_url"]), "owner": context["owner"], "name": context["name"]}
    batch = acknowledgements.Batch(app_id, repository_id, patiently)
    counting = threading.Lock()

    def delete(path):
        client.post("delete", {"repository": repository, "commit_sha": commit.sha,
                               "file": {"path": path, "sha": already[path]},
                               "previous_sha": already[path], "timestamp": int(time.time())})
        batch.acknowledged(path, None)
        with counting:
            sent.files, sent.deletes = sent.files + 1, sent.deletes + 1

    def send(action, scanned):
        # A file's requests (its chunks) go in order on one stream, each acknowledged before
        # the next.
        for payload in file_payloads(repository, commit.sha, scanned.path, scanned.sha,
                                     contents.pop(scanned.path),
                                     previous_sha=already.get(scanned.path)
                                     if action == "update" else None):
            client.post(action, payload)
        # Noted as each file is acknowledged, so a later run resends only what is missing.
        batch.acknowledged(scanned.path, scanned.sha)
        with counting:
            sent.files += 1
            if action == "create":
                sent.creates += 1
            else:
                sent.updates += 1

    # Streams pay for their threads when a link has much to send (a first sync of a large
    # repository); for a few files they only add threads contending for the GIL with the other
    # workers' jobs (measured: +50% CPU per file on a retry-all of 20-file links).
    todo = len(deletes) + len(creates) + len(updates)
    streams = settings.delivery_streams_per_link if todo >= STREAM_MIN_FILES else 1
    try:
        # Deletes, then creates, then updates: each phase ends before the next begins.
        _on_streams(streams, [lambda p=p: delete(p) for p in deletes])
        _on_streams(streams, [lambda f=f: send("create", f) for f in creates])
        _on_streams(streams, [lambda f=f: send("update", f) for f in updates])
        batch.flush()
    except DeliveryError:
        # The app refused one file: what it took before is written now, so the link's page
        # counts it (the journal would have it written by the next job anyway).
        batch.flush()
        raise
    finally:
        sent.bytes = client.bytes_sent
    _patiently(lambda: _in_transaction(lambda conn: delivered_files.save_snapshot(
        conn, repository_id, commit.sha, [(f.path, f.sha, f.size) for f in files])), where)


def _on_streams(streams, tasks):
    """Run `tasks` (one file each) in order of start on up to `streams` threads, this one
    included: a link with many files is not held to one request at a time. The first error
    stops the tasks not yet started and is raised once the running ones have ended."""
    if streams <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    queue, taking, errors = iter(tasks), threading.Lock(), []

    def stream():
        while not errors:
            with taking:
                task = next(queue, None)
            if task is None:
                return
            try:
                task()
            except BaseException as exc:  # raised below, in the job's own thread
                errors.append(exc)
                return

    helpers = [threading.Thread(target=stream, name="delivery-stream", daemon=True)
               for _ in range(min(streams, len(tasks)) - 1)]
    for helper in helpers:
        helper.start()
    stream()
    for helper in helpers:
        helper.join()
    if errors:
        raise errors[0]


def _delivered_so_far(app_id, repository_id, where):
    """{path: sha} the app has acknowledged, an earlier job's unwritten journal included."""
    def read(conn):
        settled = acknowledgements.settle_journal(conn, app_id, repository_id)
        return settled, delivered_files.delivered(conn, app_id, repository_id)

    settled, already = _patiently(lambda: _in_transaction(read), where)
    _patiently(lambda: acknowledgements.forget(app_id, repository_id, settled), where)
    return already


def _in_transaction(work):
    with db.connection() as conn:
        return work(conn)
