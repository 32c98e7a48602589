"""Queueing snapshot jobs, one at a time or thousands at once.

Why enqueue_snapshots exists: calling a Huey task costs one Redis round trip per job, which caps
a bulk retry near 6,800 rows/s (see shared/PERFORMANCE.md). Here the messages are serialized by
Huey itself and pushed in one pipeline per batch, 10x faster. That bypasses huey.enqueue(), so it
skips SIGNAL_ENQUEUED (nobody listens to it here) and writes the priority queue's layout
directly; tests/test_job_queue.py proves a consumer runs what it pushes, and it refuses any other
storage rather than guess at its layout.
"""
import os
import struct
import time

from huey.storage import RedisPriorityQueue

from ..huey_app import huey

BATCH_SIZE = 1000


def queue_snapshot(app_id, repository_id, operation_id=None):
    """Queue one snapshot job the ordinary way; return its id."""
    from ..tasks import snapshot

    task = snapshot.s(app_id, repository_id, operation_id)
    huey.enqueue(task)
    return task.id


def enqueue_snapshots(links, operation_id=None):
    """Queue a snapshot job for each (app_id, repository_id) in pipelined batches; return the
    number queued."""
    from ..tasks import snapshot

    storage = huey.storage
    if not isinstance(storage, RedisPriorityQueue):
        raise TypeError("enqueue_snapshots writes PriorityRedisHuey's queue layout; "
                        f"got {type(storage).__name__}")
    if huey.immediate:  # tests that run tasks in-process
        for app_id, repository_id in links:
            huey.enqueue(snapshot.s(app_id, repository_id, operation_id))
        return len(links)
    queued = 0
    # Each member is an 8-byte big-endian microsecond timestamp + the message, scored by
    # -priority, exactly as RedisPriorityQueue.enqueue stores it. A counter keeps the prefixes
    # unique and ordered within one batch, which the sorted set needs.
    stamp = int(time.time() * 1e6)
    template_task = snapshot.s("", "", operation_id)
    score = -(template_task.priority or 0)
    # Huey's own message for one job, as the consumer will read it; each job differs from it only
    # in its id and its args. Building a Task per job costs more than the rest of the push.
    template = huey.serializer.deserialize(huey.serialize_task(template_task))
    make_message, fields = type(template), list(template)
    id_at, args_at = template._fields.index("id"), template._fields.index("args")
    serialize = huey.serializer.serialize
    # Job ids: 128 random bits as 32 hex digits, like huey's own uuid4 ids without the dashes,
    # taken from one urandom call per batch (str(uuid4()) per job costs as much as the pickling).
    for start in range(0, len(links), BATCH_SIZE):
        batch = links[start:start + BATCH_SIZE]
        ids = os.urandom(16 * len(batch)).hex()
        members = {}
        for n, (app_id, repository_id) in enumerate(batch):
            fields[id_at] = ids[32 * n:32 * n + 32]
            fields[args_at] = (app_id, repository_id, operation_id)
            members[struct.pack(">Q", stamp) + serialize(make_message(*fields))] = score
            stamp += 1
        # One ZADD with many members: one command to pack and one reply to parse per batch.
        storage.conn.zadd(storage.queue_key, members)
        queued += len(members)
    return queued
