"""Working through a bulk retry's frozen targets, chunk by chunk, in a Huey task.

Each chunk resets still-failed targets and moves the operation's counters and cursor in one
statement (its own transaction), then queues the snapshot jobs. A worker killed between chunks
leaves a resumable operation; one killed mid-chunk leaves nothing half-written, because the
chunk's transaction is all or nothing; one killed between a chunk's commit and its push leaves
due links without a job and the chunk's outbox mark, which the sweeper finds within seconds and
pushes (services/jobs/sweeper.py).
"""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ... import db, runtime
from ...repositories import bulk_operations as ops_repo
from ...repositories import retry_links
from ..delivery import acknowledgements
from . import bulk_progress
from ..jobs import job_queue

log = logging.getLogger(__name__)


def run_bulk_retry(operation_id):
    """Work through an operation's frozen targets chunk by chunk until done or cancelled.

    Safe to run twice at once or after a crash: each chunk is one statement that locks the
    operation, starts from the cursor it left and resets only rows still failed. While
    PostgreSQL works on one chunk, a helper thread queues the jobs of the previous one (the SQL
    and the Redis push each take about half of a chunk's time).

    Chunks commit asynchronously (8% faster: no wait for each chunk's WAL flush). Should the
    database server crash, it may come back without the last chunks: their links are failed
    again, the operation's cursor and counters are back before them, and the resume redoes
    them. The jobs already queued for them are for the same generation as the redone chunk's, so
    at most one of them claims each link (the claim needs pending_snapshot and that generation,
    and any attempt moves the generation on); no job can have claimed a link whose chunk was
    lost, because its own synchronous commit would have flushed that chunk first.
    tests/test_fault_injection.py crashes PostgreSQL mid-run and checks this at the receiver."""
    _sync_progress_from_database(operation_id)
    # An optional pause between chunks throttles the load a huge retry puts on the apps.
    delay = runtime.settings().bulk_chunk_delay_ms / 1000
    cancel_flagged = threading.Event()  # the Redis hash said cancelled (see _queue_chunk)
    with db.autocommit_connection(synchronous_commit=False) as conn, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-enqueue") as pusher:
        chunks = Chunks(conn, operation_id)
        pending = None
        while True:
            chunk = chunks.reset_next(recheck=cancel_flagged.is_set())
            if pending is not None:
                pending.result()  # at most one chunk in flight; re-raise a failed push
                pending = None
            if chunk is None:
                # The last chunk's increments may have landed after the end was written to
                # the hash (the push runs beside the final statement): write it again.
                _rewrite_progress(operation_id)
                return
            pending = pusher.submit(_queue_chunk, operation_id, *chunk, cancel_flagged)
            if delay:
                time.sleep(delay)


def run_one_chunk(operation_id):
    """One chunk, start to end (reset, then queue). Returns the number of links queued, or
    None when the operation has ended. (Tests drive operations with it.)"""
    with db.autocommit_connection() as conn:
        chunk = Chunks(conn, operation_id).reset_next()
    if chunk is None:
        return None
    _queue_chunk(operation_id, *chunk)
    return len(chunk[0])


def _queue_chunk(operation_id, rows, stamp, mark, cancel_flagged=None):
    # The rows are committed as pending_snapshot, due now, and counted, with an outbox mark.
    # If this process dies before the push, the sweeper finds the mark within seconds and
    # pushes them (sweeper.push_unpushed), however long the queue is.
    if rows:
        job_queue.push_snapshot_jobs(job_queue.apps_in_turn(
            [(app_id, repository_id, operation_id, generation)
             for app_id, repository_id, generation in rows]), stamp)
        job_queue.pushed(mark)
    cancelled = bulk_progress.increment_progress(operation_id, succeeded=len(rows))
    if cancelled and cancel_flagged is not None:
        cancel_flagged.set()


class Chunks:
    """The chunks of one operation, reset one statement each on an autocommit connection.

    The operation row is read (and locked) only to start, and again when the chunk statement
    refuses to go on: cancel requested, operation over, or its cursor moved by another runner.
    """

    def __init__(self, conn, operation_id):
        self.conn = conn
        self.operation_id = operation_id
        self.op = None  # as last read; None: read it before the next chunk
        self.after = None  # the cursor the next chunk starts after

    def reset_next(self, recheck=False):
        """Reset the next chunk; return (its reset links, stamp, outbox mark), or None once the
        operation has ended. `recheck` re-reads the operation first (the Redis hash said
        cancelled)."""
        if recheck:
            self.op = None
        while True:
            if self.op is None and not self._settle():
                return None
            outcome, rows, self.after, stamp, mark = retry_links.reset_chunk(
                self.conn, self.op, self.after)
            if outcome == "chunk":
                if self.op.get("kind") == "resync":
                    # What a crashed job noted but never wrote would be written back by the
                    # link's next job: a re-sync forgets it too.
                    acknowledgements.drop_journals([(a, r) for a, r, _ in rows])
                return rows, stamp, mark
            if outcome == "done":
                self._settle(exhausted=True)
                return None
            self.op = None  # stopped: find out why, under the lock

    def _settle(self, exhausted=False):
        """Read the operation under its lock. End it when cancel was asked (cancelled) or no
        target is left (completed); return True when chunks should go on."""
        with self.conn.transaction():
            op = ops_repo.get_operation(self.conn, self.operation_id, for_update=True)
            if op is None or op["status"] not in ops_repo.ACTIVE or op["status"] == "paused":
                return False  # ended, or paused (resume queues the task again)
            if op["cancel_requested"] or bulk_progress.is_cancelled(self.operation_id):
                finished = ops_repo.finish(self.conn, self.operation_id, "cancelled")
            elif exhausted:
                finished = ops_repo.finish(self.conn, self.operation_id, "completed")
            else:
                self.op = op
                self.after = retry_links.cursor_of(op)
                return True
        bulk_progress.write_from_record(finished)
        log.info("bulk retry %s %s: %d of %d reset", finished["id"], finished["status"],
                 finished["succeeded"], finished["total"])
        return False


def _sync_progress_from_database(operation_id):
    """(Re)write the Redis hash from PostgreSQL: a resumed operation may have lost increments
    between its last commit and its death, or its hash may have expired (or Redis restarted)."""
    with db.connection() as conn:
        op = ops_repo.get_operation(conn, operation_id)
    if op is None or op["status"] not in ops_repo.ACTIVE:
        return
    bulk_progress.write_from_record(op)


def _rewrite_progress(operation_id):
    # Only once no runner is left: a runner still going (this one lost the cursor to it) has
    # increments of committed chunks on their way, which would then count twice.
    with db.connection() as conn:
        op = ops_repo.get_operation(conn, operation_id)
    if op is not None and op["status"] not in ("running", "cancelling"):
        bulk_progress.write_from_record(op)


def resume_stalled(stall_seconds):
    """Queue run_bulk_retry again for active operations whose heartbeat stopped."""
    with db.connection() as conn:
        stalled = ops_repo.claim_stalled(conn, stall_seconds)
        claimed = [ops_repo.get_operation(conn, operation_id) for operation_id in stalled]
    for op in claimed:
        log.warning("resuming stalled bulk retry %s", op["id"])
        # The claim is a beat: the panel says resumed, not stalled, from now on.
        bulk_progress.write_record(op, beat=True)
        job_queue.queue_bulk_run(op["id"])
    return stalled
