"""Affinity for a fleet: one queue per worker group, chosen by repository, with stealing.

Each worker machine has a git cache of its own, so a repository whose links are taken by every
machine is cloned and fetched by every machine. With WORKER_GROUPS = N above 1 (the same on
every web and worker process), a snapshot job goes to the queue of group
crc32(repository_id) mod N (job_queue's pushes, and huey_app.DocoraHuey.enqueue for the jobs
Huey's scheduler moves to the queue); a consumer started with WORKER_GROUP = g takes, in one
BZPOPMIN, from the shared queue first (bulk runs, periodic tasks), then from its own group's,
then from the other groups' in turn: it steals only when its own queue is empty, so
nothing waits for a group that has no consumer, or a dead one. N = 1 (the default): one queue,
as before.
"""
import struct
import time
import zlib

from huey.storage import PriorityRedisStorage

from .config import ConfigError, worker_groups


def _groups():
    try:
        return worker_groups()
    except ConfigError:
        return 1, 0  # start-up (config.load_settings) stops the process with the message


def group_of(repository_id, count):
    return zlib.crc32(repository_id.encode()) % count


class GroupedPriorityStorage(PriorityRedisStorage):
    """Huey's priority queue (a sorted set), plus one per worker group."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        count, mine = _groups()
        self.group_keys = [f"{self.queue_key}.group{n}" for n in range(count)] if count > 1 \
            else []
        # Where this consumer takes from, in order: the shared queue, its group's, the others'.
        self.dequeue_keys = [self.queue_key] + [self.group_keys[(mine + n) % count]
                                                for n in range(len(self.group_keys))]

    def key_for(self, repository_id):
        """The queue a repository's snapshot jobs go to."""
        if not self.group_keys:
            return self.queue_key
        return self.group_keys[group_of(repository_id, len(self.group_keys))]

    def enqueue_to(self, key, data, priority=None):
        """RedisPriorityQueue.enqueue into the given queue."""
        score = 0 if priority is None else -priority
        self.conn.zadd(key, {struct.pack(">Q", int(time.time() * 1e6)) + data: score})

    def all_keys(self):
        return [self.queue_key] + self.group_keys

    def dequeue(self):
        if len(self.dequeue_keys) == 1:
            return super().dequeue()
        if self.blocking:
            try:
                _, res, _ = self.conn.bzpopmin(self.dequeue_keys, timeout=self.read_timeout)
            except (TimeoutError, TypeError, IndexError):
                return None  # empty or timed out; a lost connection propagates for backoff
            return res[8:]
        for key in self.dequeue_keys:
            items = self.conn.zpopmin(key, count=1)
            if items:
                return items[0][0][8:]
        return None

    def queue_size(self):
        return sum(self.conn.zcard(key) for key in self.all_keys())

    def enqueued_items(self, limit=None):
        return [member[8:] for member in self.first_members(limit)]

    def first_members(self, limit=None):
        """The waiting members of every queue (place prefix included), in priority then
        place order, the first `limit` of them."""
        members = []
        for key in self.all_keys():
            members.extend(self.conn.zrange(key, 0, limit - 1 if limit else -1,
                                            withscores=True))
        members.sort(key=lambda pair: (pair[1], pair[0]))
        return [member for member, _ in members[:limit]]

    def flush_queue(self):
        self.conn.delete(*self.all_keys())
