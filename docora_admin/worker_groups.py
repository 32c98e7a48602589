"""Affinity for a fleet: one queue per worker group, chosen by repository, with stealing.

Each worker machine has a git cache of its own, so a repository whose links are taken by every
machine is cloned and fetched by every machine. With WORKER_GROUPS = N above 1 (the same on
every web and worker process), a snapshot job goes to its repository's group's queue
(job_queue's pushes, and huey_app.DocoraHuey.enqueue for the jobs Huey's scheduler moves to
the queue). A repository seen for the first time joins the group that has fewest (one Lua
script over a Redis hash, so every process agrees), and keeps it: the groups hold the same
number of repositories, where a hash of the id split 20 of them 12 to 8. A consumer started
with WORKER_GROUP = g takes, in one BZPOPMIN, from the shared queue first (bulk runs, periodic
tasks), then from its own group's, then from the other groups' it may steal from: only when
its own queue is empty, and only from a group that has no consumer alive (its watchdog stopped
saying so: a dead machine's jobs wait at most two watchdog intervals) or a backlog
(_steal_from), so nothing waits for a group that has no consumer. N = 1 (the default): one
queue, as before.
"""
import struct
import time

from huey.storage import PriorityRedisStorage

from .config import ConfigError, worker_groups


def _groups():
    try:
        return worker_groups()
    except ConfigError:
        return 1, 0  # start-up (config.load_settings) stops the process with the message


# Another group's queue is stolen from when it has no consumer alive, or this many jobs waiting.
STEAL_BACKLOG = 64
STEAL_LOOK_S = 1.0

# KEYS[1]: the hash of repository id → group, and of "#g" → how many repositories group g has;
# ARGV[1]: the group count; the rest: repository ids. Returns their groups, in order.
_ASSIGN = """
local count, out = tonumber(ARGV[1]), {}
for i = 2, #ARGV do
  local group = redis.call('HGET', KEYS[1], ARGV[i])
  if not group then
    local least
    for n = 0, count - 1 do
      local held = tonumber(redis.call('HGET', KEYS[1], '#' .. n) or '0')
      if least == nil or held < least then group, least = n, held end
    end
    redis.call('HSET', KEYS[1], ARGV[i], group)
    redis.call('HINCRBY', KEYS[1], '#' .. group, 1)
  end
  out[#out + 1] = tonumber(group)
end
return out
"""


class GroupedPriorityStorage(PriorityRedisStorage):
    """Huey's priority queue (a sorted set), plus one per worker group."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        count, mine = _groups()
        self.group_keys = [f"{self.queue_key}.group{n}" for n in range(count)] if count > 1 \
            else []
        # Where this consumer takes from, in order: the shared queue, its group's, the others'
        # (those it may steal from now: _steal_from).
        self.dequeue_keys = [self.queue_key] + [self.group_keys[(mine + n) % count]
                                                for n in range(len(self.group_keys))]
        self.alive_key = f"{self.dequeue_keys[1]}.alive" if self.group_keys else None
        self._stealable, self._stealable_until = [], 0.0
        # Per group count: a fleet that changes WORKER_GROUPS starts a new, even split.
        self.assignment_key = f"{self.queue_key}.groups{count}.of"
        self._assign = self.conn.register_script(_ASSIGN)

    def groups_of(self, repository_ids):
        """{repository_id: its group}, choosing one for a repository seen for the first time
        (one round trip for all of them)."""
        unique = list(dict.fromkeys(repository_ids))
        if not self.group_keys or not unique:
            return dict.fromkeys(unique, 0)
        groups = self._assign(keys=[self.assignment_key],
                              args=[len(self.group_keys), *unique])
        return dict(zip(unique, groups))

    def keys_for(self, repository_ids):
        """{repository_id: the queue its snapshot jobs go to}."""
        if not self.group_keys:
            return dict.fromkeys(repository_ids, self.queue_key)
        return {repository_id: self.group_keys[group]
                for repository_id, group in self.groups_of(repository_ids).items()}

    def key_for(self, repository_id):
        """The queue a repository's snapshot jobs go to."""
        return self.keys_for([repository_id])[repository_id]

    def enqueue_to(self, key, data, priority=None, place=None):
        """RedisPriorityQueue.enqueue into the given queue, at queue place `place` (µs; now by
        this machine's clock when None)."""
        score = 0 if priority is None else -priority
        if place is None:
            place = int(time.time() * 1e6)
        self.conn.zadd(key, {struct.pack(">Q", place) + data: score})

    def all_keys(self):
        return [self.queue_key] + self.group_keys

    def note_alive(self, seconds):
        """This consumer's group has a consumer for the next `seconds` (the watchdog says so
        every tick): the others steal its jobs only past a backlog meanwhile (_steal_from)."""
        if self.alive_key is not None:
            self.conn.set(self.alive_key, "1", ex=max(1, int(seconds)))

    def _steal_from(self):
        """The other groups' queues this consumer may take from when its own is empty: a group
        with no consumer alive (never started, or dead: its watchdog stopped saying so), or one
        with STEAL_BACKLOG jobs or more waiting. A live group's last few jobs are left to it: its
        machine has their checkouts and delivers them in milliseconds, where a thief would clone
        or fetch each of their repositories first (on a slow remote, seconds each). Looked up at
        most once a STEAL_LOOK_S per process."""
        now = time.monotonic()
        if now < self._stealable_until:
            return self._stealable
        others = self.dequeue_keys[2:]
        pipe = self.conn.pipeline(transaction=False)
        for key in others:
            pipe.exists(f"{key}.alive")
            pipe.zcard(key)
        answers = pipe.execute()
        self._stealable = [key for key, alive, waiting in zip(others, answers[::2], answers[1::2])
                           if not alive or waiting >= STEAL_BACKLOG]
        self._stealable_until = now + STEAL_LOOK_S
        return self._stealable

    def dequeue(self):
        if len(self.dequeue_keys) == 1:
            return super().dequeue()
        keys = self.dequeue_keys[:2] + self._steal_from()
        if self.blocking:
            try:
                _, res, _ = self.conn.bzpopmin(keys, timeout=self.read_timeout)
            except (TimeoutError, TypeError, IndexError):
                return None  # empty or timed out; a lost connection propagates for backoff
            return res[8:]
        for key in keys:
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
