"""Queueing snapshot jobs, one at a time or thousands at once, and reading where the queue is.

A snapshot job is snapshot(app_id, repository_id, operation_id, generation): it may claim the
link only while the link's job_generation is still `generation` (see repositories/retry_links).

Why push_snapshot_jobs exists: calling a Huey task costs one Redis round trip per job, which caps a
bulk retry near 6,800 rows/s (see shared/PERFORMANCE.md). Here the messages are serialized by Huey
itself and pushed in one pipeline per batch, 10x faster. That bypasses huey.enqueue(), so it skips
SIGNAL_ENQUEUED (nobody listens to it here) and writes the priority queue's layout directly;
tests/test_job_queue.py proves a consumer runs what it pushes, and it refuses any other storage
rather than guess at its layout.

The queue's layout also tells the sweeper which jobs were lost. Each member is an 8-byte
big-endian microsecond timestamp + the message, and the consumer takes members in that order. We
write the timestamp ourselves: the PostgreSQL time of the statement that made the link due
("stamp", which equals its next_attempt_at), so the oldest waiting member says how far the
consumers have got, and a due link older than that (by a grace period) has no job left.

What the queue order cannot tell, with a backlog: a push that never came after its commit. The
statements that make links due write a mark in the job outbox in the same transaction (`note`,
or a CTE with repositories/job_outbox.NOTE_CTE); `pushed` clears it once the jobs are in Redis,
and the sweeper pushes the links of every mark older than a few seconds again at once
(sweeper.push_unpushed), however long the queue is.
"""
import itertools
import logging
import os
import struct
from collections import defaultdict

from ... import db, task_handles
from ...huey_app import huey
from ...worker_groups import GroupedPriorityStorage
from ...repositories import job_outbox

BATCH_SIZE = 1000
# How many places ahead of its repository's other jobs the first one is queued: more than the
# workers that take jobs at once (8 per consumer by default), so that the fetch is done when
# they reach the rest. On bench/retry_to_delivered.py (1 consumer, 8 workers), with each app's
# jobs taken by repository (a first form of this order): no lead 22.9 s, a lead of 16 or 40
# 17.3 s; the order as it is, with 32: 17.9 s against 19.6 s for the apps' turns alone.
LEAD = 32
_SNAPSHOT_SCORE = 0  # -priority: snapshot jobs have priority 0 (huey_app.PRIORITY_SNAPSHOT)
# A job given back while its repository is fetched on this machine: behind every other job of
# its queue (push_given_back).
_GIVEN_BACK_SCORE = 1


def _storage():
    storage = huey.storage
    if not isinstance(storage, GroupedPriorityStorage):
        raise TypeError("job_queue writes the grouped PriorityRedisHuey queue layout; "
                        f"got {type(storage).__name__}")
    return storage


def apps_in_turn(jobs):
    """The jobs [(app_id, repository_id, …)] reordered so that the apps take turns and a
    repository's jobs come together, its first job LEAD places ahead of the others.

    A chunk of a retry-all comes in the order its links failed. Queued so, when one app's links
    come in a row, every worker would deliver to that app at once, held to its rate and
    concurrency while the other apps wait; and a repository's links would be spread over the
    whole run, each asking the remote for its head again as the last answer grows old
    (GIT_SHARE_SECONDS), and in a retry larger than this process's caches, finding the
    repository's scan and encoded files evicted. So the apps take turns (round robin, each
    app's jobs in their order), and then each repository's jobs are drawn together where its
    first one fell. That first job is moved LEAD places ahead, so that its fetch runs while the
    workers still deliver the repositories before it, rather than have them all wait for the
    lock (and all ask for the head at once)."""
    by_app = {}
    for job in jobs:
        by_app.setdefault(job[0], []).append(job)
    turns = [job for turn in itertools.zip_longest(*by_app.values()) for job in turn
             if job is not None]
    by_repository = {}
    for job in turns:
        by_repository.setdefault(job[1], []).append(job)
    ordered = []
    for group in by_repository.values():
        # (place, job): the group's first job LEAD places ahead of where it would be.
        ordered.append((len(ordered) - LEAD, group[0]))
        ordered.extend((len(ordered), job) for job in group[1:])
    ordered.sort(key=lambda placed: placed[0])
    return [job for _, job in ordered]


def push_snapshot_jobs(jobs, stamp):
    """Queue one snapshot job per (app_id, repository_id, operation_id, generation), in pipelined
    batches, at queue place `stamp` (µs, the time the links became due). Returns the job ids."""
    snapshot = task_handles.task("snapshot")
    storage = _storage()
    if huey.immediate:  # tests that run tasks in-process
        ids = []
        for args in jobs:
            task = snapshot.s(*args)
            huey.enqueue(task)
            ids.append(task.id)
        return ids
    template_task = snapshot.s("", "", None, None)
    if -(template_task.priority or 0) != _SNAPSHOT_SCORE:
        raise ValueError("snapshot jobs must keep priority 0 for the sweeper's queue reading")
    # Huey's own message for one job, as the consumer will read it; each job differs from it only
    # in its id and its args. Building a Task per job costs more than the rest of the push.
    template = huey.serializer.deserialize(huey.serialize_task(template_task))
    make_message, fields = type(template), list(template)
    id_at, args_at = template._fields.index("id"), template._fields.index("args")
    serialize = huey.serializer.serialize
    all_ids = []
    place = int(stamp)
    for start in range(0, len(jobs), BATCH_SIZE):
        batch = jobs[start:start + BATCH_SIZE]
        # Job ids: 128 random bits as 32 hex digits, like huey's own uuid4 ids without the
        # dashes, taken from one urandom call per batch (str(uuid4()) per job costs as much as
        # the pickling).
        ids = os.urandom(16 * len(batch)).hex()
        members = defaultdict(dict)  # queue key (a worker group's, when there are groups) → …
        keys = storage.keys_for([args[1] for args in batch])
        for n, args in enumerate(batch):
            job_id = ids[32 * n:32 * n + 32]
            fields[id_at] = job_id
            fields[args_at] = tuple(args)
            # A counter keeps the members unique and in order within one batch.
            members[keys[args[1]]][
                struct.pack(">Q", place) + serialize(make_message(*fields))] = _SNAPSHOT_SCORE
            place += 1
            all_ids.append(job_id)
        # One ZADD with many members per queue: one command to pack and one reply to parse.
        if len(members) == 1:
            [(key, batch_members)] = members.items()
            storage.conn.zadd(key, batch_members)
        else:
            pipe = storage.conn.pipeline(transaction=False)
            for key, batch_members in members.items():
                pipe.zadd(key, batch_members)
            pipe.execute()
    return all_ids


def schedule_snapshot(app_id, repository_id, operation_id, generation, eta):
    """Queue a snapshot job to run at `eta` (a backoff), straight into Huey's schedule (not via
    the queue, as task.schedule() does); the consumer's scheduler moves it to the queue then."""
    snapshot = task_handles.task("snapshot")
    huey.add_schedule(snapshot.s(app_id, repository_id, operation_id, generation, eta=eta))


def push_given_back(app_id, repository_id, operation_id, generation, due_at):
    """Queue the job of a link given back while another worker of this machine fetches its
    repository (services/delivery/snapshot.py): into its repository's queue, as every snapshot
    job, but behind every job there that was not given back, so that the worker takes those
    first and this one comes round when they are done, by when the fetch most likely is too. In
    its group's queue, not Huey's schedule: a machine whose jobs wait for its own fetch does
    not go and steal another machine's (and clone its repositories) meanwhile."""
    task = task_handles.task("snapshot").s(app_id, repository_id, operation_id, generation)
    if huey.immediate:
        huey.enqueue(task)
        return
    storage = _storage()
    storage.enqueue_to(storage.key_for(repository_id), huey.serialize_task(task),
                       priority=-_GIVEN_BACK_SCORE, place=int(due_at.timestamp() * 1e6))


def note_group_alive(seconds):
    """This consumer's worker group has a consumer for `seconds` (the watchdog's heartbeat)."""
    if not huey.immediate:  # tests that run tasks in-process have no queue to steal from
        _storage().note_alive(seconds)


def other_work_waiting():
    """Whether a job waits that this consumer would take before stealing another worker group's
    (from the shared queue or its own group's; with one group, the one queue), not counting the
    jobs given back (push_given_back): with only those left, waiting for the fetch is the work."""
    if huey.immediate:
        return False
    storage = _storage()
    pipe = storage.conn.pipeline(transaction=False)
    for key in storage.dequeue_keys[:2]:
        pipe.zcount(key, "-inf", _SNAPSHOT_SCORE)
    return any(pipe.execute())


def oldest_waiting_stamp():
    """The queue place (µs) of the oldest snapshot job still waiting, or None when none waits."""
    storage = _storage()
    # The oldest over every queue (each worker group's too): a link due before it had its job
    # taken off whichever queue it was in.
    pipe = storage.conn.pipeline(transaction=False)
    for key in storage.all_keys():
        for score in (_SNAPSHOT_SCORE, _GIVEN_BACK_SCORE):
            pipe.zrangebyscore(key, score, score, start=0, num=1)
    heads = [first[0] for first in pipe.execute() if first]
    return min(struct.unpack(">Q", head[:8])[0] for head in heads) if heads else None


def queue_sync_failed_notices():
    """Queue one run of the sync_failed sender (services/control/sync_failed.send_due); duplicates
    are harmless: each notice is claimed by one sender."""
    task_handles.task("send_sync_failed_notices")()


def queue_alert_deliveries():
    """Queue one run of the alert sender (services/alerts/sending.send_due); duplicates are
    harmless: each delivery is claimed by one sender."""
    task_handles.task("send_alert_deliveries")()


def queue_bulk_run(operation_id):
    """Queue the task that works through a bulk operation (services/retries/bulk_runner.py)."""
    task_handles.task("run_bulk_retry")(operation_id)


def note(conn, stamp, links):
    """In the transaction that makes `links` ([(app_id, repository_id)]) due: the outbox mark
    that `pushed` clears; returns its id."""
    return job_outbox.note(conn, stamp, links)


def noted(conn, due):
    """`due` (a link row given back due: app_id, repository_id, maybe stamp and status) with the
    outbox mark of its next job under "mark" while it waits for one; None stays None."""
    if due is not None and due.get("status", "pending_snapshot") == "pending_snapshot":
        due["mark"] = note(conn, due.get("stamp"), [(due["app_id"], due["repository_id"])])
    return due


def pushed(*marks):
    """The jobs of these marks are in Redis: clear them. Best effort: a mark left behind only
    has its links pushed again (a no-op for jobs that already ran)."""
    marks = [mark for mark in marks if mark is not None]
    if not marks:
        return
    try:
        with db.connection() as conn:
            job_outbox.clear(conn, marks)
    except Exception as exc:  # noqa: BLE001 - PostgreSQL gone now: the sweeper re-pushes
        logging.getLogger(__name__).debug("outbox marks %s not cleared: %s", marks, exc)


def queue_in_batches(take_batch, batch_size):
    """Queue links that `take_batch(conn)` makes due, batch after batch, each batch's jobs
    pushed after its commit (with an outbox mark, so a crash between the two is healed within
    seconds), until a batch is smaller than `batch_size` (None: `take_batch` runs once). The
    rows are what release statements return: app_id, repository_id, retry_operation_id,
    job_generation, stamp. Returns how many were queued."""
    total = 0
    while True:
        mark = None
        with db.connection() as conn:
            rows = take_batch(conn)
            if rows:
                mark = note(conn, rows[0]["stamp"],
                            [(r["app_id"], r["repository_id"]) for r in rows])
        if rows:
            push_snapshot_jobs(
                [(r["app_id"], r["repository_id"], r["retry_operation_id"], r["job_generation"])
                 for r in rows], rows[0]["stamp"])
            pushed(mark)
        total += len(rows)
        if batch_size is None or len(rows) < batch_size:
            return total
