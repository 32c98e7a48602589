"""Per-app request rate and concurrency, shared by every worker thread and consumer process
(one Lua script in Redis, so checking and taking a slot is one atomic step).

Rate: a reservation per request in the style of GCRA. The app's key holds the time (Redis's own
clock, so processes on several machines agree) at which its next request may go; a request takes
that time and moves it one interval on, then sleeps until its time comes. No request is ever
earlier than 1/rate after the one before it, whichever process sent that one.

Concurrency: a sorted set of the app's requests in flight, each scored with when its hold expires
(a worker that dies mid-request frees its slot after the delivery timeout). A request that finds
every slot taken polls briefly.

A request that would wait longer than MAX_WAIT_S for its turn is not sent: the job gives its link
back, due when the turn would have come (services/snapshot.py), and the worker is free meanwhile.

A request's concurrency slot is given back by the same script call that takes the next one (or by
release() once the job has recorded its outcome), never by a Redis call between the app's answer
and the job's record of it: a job held up there (Redis slow or paused) and then killed would leave
a file the app has, unrecorded, to be sent twice.
"""
import os
import threading
import time

from .. import runtime

MAX_WAIT_S = 2.0
POLL_S = 0.01  # concurrency full: look again after this

# Returns {granted, wait µs}: granted 1 = go after waiting; 0 = every concurrency slot is taken;
# 2 = the rate turn is more than the longest wait away (nothing reserved).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if ARGV[6] ~= '' then redis.call('ZREM', KEYS[2], ARGV[6]) end
local rate, concurrency = tonumber(ARGV[1]), tonumber(ARGV[2])
local hold_us, max_wait_us = tonumber(ARGV[4]), tonumber(ARGV[5])
if concurrency > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= concurrency then return {0, 0} end
end
local wait = 0
if rate > 0 then
  local interval = math.floor(1000000 / rate)
  local turn = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  wait = turn - now
  if wait > max_wait_us then return {2, wait} end
  redis.call('SET', KEYS[1], turn + interval, 'PX', math.floor((wait + interval) / 1000) + 1000)
end
if concurrency > 0 then
  redis.call('ZADD', KEYS[2], now + wait + hold_us, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], math.floor((wait + hold_us) / 1000) + 1000)
end
return {1, wait}
"""


class RateLimited(Exception):
    """The app's next turn is further away than MAX_WAIT_S; `wait_s` says how far."""

    def __init__(self, wait_s):
        super().__init__(f"the app's rate limit allows the next request in {wait_s:.1f} s")
        self.wait_s = wait_s


_scripts = {}


def _script(client):
    # One Script per client: it sends EVALSHA and loads the script only when Redis lacks it.
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_ACQUIRE)
    return script


def _keys(app_id):
    return f"docora:app:{{{app_id}}}:next", f"docora:app:{{{app_id}}}:inflight"


class AppLimiter:
    """The limits of one app for one job: `limiter.turn()` before each request (from any of the
    job's delivery streams), `limiter.release()` once the job's outcome is recorded."""

    def __init__(self, app_id, rate_per_second, max_concurrency, hold_seconds):
        self.app_id = app_id
        self.rate = float(rate_per_second or 0)
        self.concurrency = int(max_concurrency or 0)
        self.hold_us = int(hold_seconds * 1_000_000)
        self.waited_s = 0.0  # time spent waiting for turns, for the job's log line
        # The concurrency slot of each delivery stream's last request (a link's files may go on
        # several threads at once), until given back.
        self._held = {}
        self._lock = threading.Lock()

    @property
    def unlimited(self):
        return self.rate <= 0 and self.concurrency <= 0

    def turn(self):
        """Wait for the app's next turn: a rate turn and a concurrency slot, which the previous
        request's slot makes room for. RateLimited when it is more than MAX_WAIT_S away."""
        if self.unlimited:
            return
        acquire = _script(runtime.redis_client())
        rate_key, inflight_key = _keys(self.app_id)
        holder = os.urandom(8).hex()
        stream = threading.get_ident()
        started = time.monotonic()
        while True:
            with self._lock:
                previous = self._held.pop(stream, "")  # given back by the script, whatever
            granted, wait_us = acquire(keys=[rate_key, inflight_key], args=[
                self.rate, self.concurrency, holder, self.hold_us, int(MAX_WAIT_S * 1e6),
                previous])
            if granted == 1:
                if self.concurrency > 0:
                    with self._lock:
                        self._held[stream] = holder
                if wait_us:
                    time.sleep(wait_us / 1e6)
                break
            if granted == 2:
                raise RateLimited(wait_us / 1e6)
            if time.monotonic() - started > MAX_WAIT_S:
                raise RateLimited(MAX_WAIT_S)
            time.sleep(POLL_S)
        self.waited_s += time.monotonic() - started

    def release(self):
        """Give back the concurrency slots still held (once the job's outcome is recorded)."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        if held:
            runtime.redis_client().zrem(_keys(self.app_id)[1], *held)
