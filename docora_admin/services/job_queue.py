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
"""
import itertools
import os
import struct

from huey.storage import RedisPriorityQueue

from ..huey_app import huey

BATCH_SIZE = 1000
_SNAPSHOT_SCORE = 0  # -priority: snapshot jobs have priority 0 (huey_app.PRIORITY_SNAPSHOT)


def _storage():
    storage = huey.storage
    if not isinstance(storage, RedisPriorityQueue):
        raise TypeError("job_queue writes PriorityRedisHuey's queue layout; "
                        f"got {type(storage).__name__}")
    return storage


def apps_in_turn(jobs):
    """The jobs [(app_id, …)] reordered so that the apps take turns (round robin, each app's
    jobs in their order): a chunk of a retry-all comes app by app, and queued so, every worker
    would deliver to the same app at once, held to that app's rate and concurrency while the
    other apps wait."""
    by_app = {}
    for job in jobs:
        by_app.setdefault(job[0], []).append(job)
    if len(by_app) <= 1:
        return list(jobs)
    queues = list(by_app.values())
    return [job for turn in itertools.zip_longest(*queues) for job in turn if job is not None]


def push_snapshot_jobs(jobs, stamp):
    """Queue one snapshot job per (app_id, repository_id, operation_id, generation), in pipelined
    batches, at queue place `stamp` (µs, the time the links became due). Returns the job ids."""
    from ..tasks import snapshot

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
        members = {}
        for n, args in enumerate(batch):
            job_id = ids[32 * n:32 * n + 32]
            fields[id_at] = job_id
            fields[args_at] = tuple(args)
            # A counter keeps the members unique and in order within one batch.
            members[struct.pack(">Q", place) + serialize(make_message(*fields))] = _SNAPSHOT_SCORE
            place += 1
            all_ids.append(job_id)
        # One ZADD with many members: one command to pack and one reply to parse per batch.
        storage.conn.zadd(storage.queue_key, members)
    return all_ids


def schedule_snapshot(app_id, repository_id, operation_id, generation, eta):
    """Queue a snapshot job to run at `eta` (a backoff), straight into Huey's schedule (not via
    the queue, as task.schedule() does); the consumer's scheduler moves it to the queue then."""
    from ..tasks import snapshot

    huey.add_schedule(snapshot.s(app_id, repository_id, operation_id, generation, eta=eta))


def oldest_waiting_stamp():
    """The queue place (µs) of the oldest snapshot job still waiting, or None when none waits."""
    storage = _storage()
    first = storage.conn.zrangebyscore(storage.queue_key, _SNAPSHOT_SCORE, _SNAPSHOT_SCORE,
                                       start=0, num=1)
    return struct.unpack(">Q", first[0][:8])[0] if first else None
