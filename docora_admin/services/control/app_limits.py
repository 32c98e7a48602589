"""Per-app request rate and concurrency, shared by every worker thread and consumer process
(one Lua script in Redis, so checking and taking is one atomic step).

Rate: reservations in the style of GCRA. The app's key holds the time (Redis's own clock, so
processes on several machines agree) from which its next turn may be taken, a turn being 1/rate
long. A delivery stream reserves a block of consecutive turns at once and sends at most one
request per turn, no earlier than the turn begins and before it ends (a turn that went by unused
is skipped, not made up for); it reserves again once the block is over. Whichever streams and
processes send, no window of time holds more requests than it holds turns (+1), and a fast
stream asks Redis once per block rather than once per request: a script call per request was a
quarter of a consumer's CPU time on a retry-all of small links (bench/retry_to_delivered.py). A
block lasts at most BLOCK_S (one turn when the rate is lower than 1/BLOCK_S: such an app is asked
for its turn per request, as before); a stream that could not use its whole block (a slow app) asks
for fewer turns next time, and turns it leaves unused are given back when nobody has reserved after
them.

Concurrency: a sorted set of the app's delivery streams, each scored with when its hold expires
(a worker that dies mid-job frees its slot after twice the delivery timeout). A stream takes its
slot with its first request and keeps it, renewing its hold as it reserves turns (or, with no
rate, every delivery timeout), until the job has recorded its outcome: at most max_concurrency
requests are in flight, one per stream. A stream that finds every slot taken polls briefly.

A request that would wait longer than MAX_WAIT_S for its turn is not sent: the job gives its link
back, due when the turn would have come (services/delivery/snapshot.py), and the worker is free
meanwhile.

Slots go back by release(), once the job has recorded its outcome, never by a Redis call between
the app's answer and the job's record of it: a job held up there (Redis slow or paused) and then
killed would leave a file the app has, unrecorded, to be sent twice.
"""
import os
import threading
import time

from ... import runtime

MAX_WAIT_S = 2.0
POLL_S = 0.01  # concurrency full: look again after this
BLOCK_S = 0.05  # the longest block of turns a stream reserves at once
MAX_BLOCK = 16

# KEYS: next turn, streams in flight. ARGV: rate, concurrency, holder, hold µs, longest wait µs,
# turns wanted, and a block to give back first ('' or "end unused_from", µs).
# Returns {granted, wait µs, first turn µs}: granted 1 = go; 0 = every concurrency slot is
# taken; 2 = the turn is more than the longest wait away (nothing reserved).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate, concurrency = tonumber(ARGV[1]), tonumber(ARGV[2])
local holder, hold_us, max_wait_us = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local wanted = tonumber(ARGV[6])
if ARGV[7] ~= '' then
  local block_end, unused_from = string.match(ARGV[7], '(%d+) (%d+)')
  local next_turn = redis.call('GET', KEYS[1])
  if next_turn == block_end then
    redis.call('SET', KEYS[1], math.max(tonumber(unused_from), now), 'KEEPTTL')
  end
end
if concurrency > 0 and not redis.call('ZSCORE', KEYS[2], holder) then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= concurrency then return {0, 0, 0} end
end
local wait, turn, span = 0, now, 0
if rate > 0 then
  local interval = math.floor(1000000 / rate)
  turn = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  wait = turn - now
  if wait > max_wait_us then return {2, wait, 0} end
  span = wanted * interval
  redis.call('SET', KEYS[1], turn + span, 'PX', math.floor((wait + span) / 1000) + 1000)
end
if concurrency > 0 then
  redis.call('ZADD', KEYS[2], now + wait + span + 2 * hold_us, holder)
  redis.call('PEXPIRE', KEYS[2], math.floor((wait + span + 2 * hold_us) / 1000) + 1000)
end
return {1, wait, turn}
"""

# KEYS: next turn, streams in flight. ARGV: n, n holders, then blocks to give back
# ("end unused_from").
_RELEASE = """
local n = tonumber(ARGV[1])
for i = 2, n + 1 do redis.call('ZREM', KEYS[2], ARGV[i]) end
for i = n + 2, #ARGV do
  local block_end, unused_from = string.match(ARGV[i], '(%d+) (%d+)')
  if redis.call('GET', KEYS[1]) == block_end then
    redis.call('SET', KEYS[1], unused_from, 'KEEPTTL')
  end
end
return 1
"""


class RateLimited(Exception):
    """The app's next turn is further away than MAX_WAIT_S; `wait_s` says how far."""

    def __init__(self, wait_s):
        super().__init__(f"the app's rate limit allows the next request in {wait_s:.1f} s")
        self.wait_s = wait_s


_scripts = {}


def _script(client, source):
    # One Script per client: it sends EVALSHA and loads the script only when Redis lacks it.
    script = _scripts.get((id(client), source))
    if script is None:
        script = _scripts[(id(client), source)] = client.register_script(source)
    return script


def _keys(app_id):
    return f"docora:app:{{{app_id}}}:next", f"docora:app:{{{app_id}}}:inflight"


class _Stream:
    """One delivery stream's slot and block of turns."""

    def __init__(self):
        self.holder = os.urandom(8).hex()
        self.slot_until = 0.0  # monotonic time by which the slot's hold must be renewed
        self.block_size = MAX_BLOCK
        self.turn_us = 0  # Redis time of the block's first turn
        self.first_at = 0.0  # the same, on this process's monotonic clock
        self.count = 0  # turns in the block
        self.usable = 0  # of them, those that begin before the block ends on this clock
        self.used = 0  # turns taken from it or gone by
        self.sent = 0  # requests sent in it

    def given_back(self, interval_us):
        """The block's unused turns, as the scripts take them: "end unused_from" (µs)."""
        if self.count and self.used < self.count:
            return (f"{self.turn_us + self.count * interval_us} "
                    f"{self.turn_us + self.used * interval_us}")
        return ""


class AppLimiter:
    """The limits of one app for one job: `limiter.turn()` before each request (from any of the
    job's delivery streams), `limiter.release()` once the job's outcome is recorded."""

    def __init__(self, app_id, rate_per_second, max_concurrency, hold_seconds):
        self.app_id = app_id
        self.rate = float(rate_per_second or 0)
        self.concurrency = int(max_concurrency or 0)
        self.hold_us = int(hold_seconds * 1_000_000)
        self.interval_us = int(1_000_000 / self.rate) if self.rate > 0 else 0
        self.longest_block = max(1, min(MAX_BLOCK, int(BLOCK_S * self.rate)))
        self.waited_s = 0.0  # time spent waiting for turns, for the job's log line
        self._streams = {}  # thread id → _Stream (a link's files may go on several threads)
        self._idle = []  # streams whose threads have ended, for the next thread to carry on
        self._lock = threading.Lock()

    @property
    def unlimited(self):
        return self.rate <= 0 and self.concurrency <= 0

    def turn(self):
        """Wait for the app's next turn: the next of this stream's reserved turns, or a new
        block (and this stream's concurrency slot). RateLimited when it is more than MAX_WAIT_S
        away."""
        if self.unlimited:
            return
        with self._lock:
            stream = self._streams.get(threading.get_ident())
            if stream is None:
                stream = self._streams[threading.get_ident()] = (
                    self._idle.pop() if self._idle else _Stream())
        now = time.monotonic()
        if self._from_block(stream, now):
            return
        started = now
        while True:
            given_back = stream.given_back(self.interval_us)
            wanted = self._block_wanted(stream) if self.rate > 0 else 0
            asked = time.monotonic()
            granted, wait_us, turn_us = _script(runtime.redis_client(), _ACQUIRE)(
                keys=list(_keys(self.app_id)), args=[
                    self.rate, self.concurrency, stream.holder, self.hold_us,
                    int(MAX_WAIT_S * 1e6), wanted, given_back])
            if given_back:
                stream.count = stream.used = stream.sent = 0
            if granted == 1:
                now = time.monotonic()
                # The hold lasts two delivery timeouts: a request that starts before
                # slot_until ends before the hold does.
                stream.slot_until = asked + wait_us / 1e6 + self.hold_us / 1e6
                if self.rate > 0:
                    # Redis's clock read the block's start somewhere between `asked` and `now`
                    # on ours. Its turns begin no earlier than reserved (counted from `now`),
                    # and the ones that would then begin after the block ends (counted from
                    # `asked`) are not taken: a reply that came late (a descheduled thread)
                    # does not push the block into the one reserved after it.
                    late = int((now - asked) * 1e6 / self.interval_us)
                    stream.turn_us, stream.first_at = turn_us, now + wait_us / 1e6
                    stream.count, stream.usable = wanted, wanted - late
                    if stream.usable >= 1:
                        stream.used, stream.sent = 1, 1
                        if wait_us:
                            time.sleep(wait_us / 1e6)
                        break
                    stream.used, stream.sent = wanted, 0  # it went by meanwhile: ask again
                else:
                    break
            elif granted == 2:
                raise RateLimited(wait_us / 1e6)
            if time.monotonic() - started > MAX_WAIT_S:
                raise RateLimited(MAX_WAIT_S)
            time.sleep(POLL_S)
        self.waited_s += time.monotonic() - started

    def _from_block(self, stream, now):
        """Take the stream's next reserved turn that has not gone by, waiting for it to begin
        (turns that went by unused are skipped: one request per turn, never two at once to
        make up for them); with no rate, go on while the slot's hold is fresh."""
        if now >= stream.slot_until:
            return False
        if self.rate <= 0:
            return True
        interval = self.interval_us / 1e6
        turn = stream.used
        if now >= stream.first_at + (turn + 1) * interval:
            turn = int((now - stream.first_at) / interval)
        if turn >= stream.usable:
            return False  # the block is over
        stream.used, stream.sent = turn + 1, stream.sent + 1
        at = stream.first_at + turn * interval
        if at > now:
            time.sleep(at - now)
            self.waited_s += at - now
        return True

    def _block_wanted(self, stream):
        # A stream that sent fewer requests than its last block had turns (it is slower than
        # the rate) asks for as many as it sent, plus one; one that sent one per turn asks for
        # twice as many.
        if stream.count:
            stream.block_size = (stream.sent + 1 if stream.sent < stream.count
                                 else stream.count * 2)
        return max(1, min(self.longest_block, stream.block_size))

    def thread_done(self):
        """This thread sends no more: its stream (slot and turns) goes to the job's next new
        thread, so a job never holds more slots than it has threads sending at once."""
        with self._lock:
            stream = self._streams.pop(threading.get_ident(), None)
            if stream is not None:
                self._idle.append(stream)

    def release(self, pipeline=None):
        """Give back the concurrency slots and unused turns (once the job's outcome is
        recorded); on `pipeline` when given (the caller runs it)."""
        with self._lock:
            streams = [*self._streams.values(), *self._idle]
            self._streams, self._idle = {}, []
        holders = [s.holder for s in streams] if self.concurrency > 0 else []
        blocks = [b for b in (s.given_back(self.interval_us) for s in streams) if b]
        if not holders and not blocks:
            return
        args = [len(holders), *holders, *blocks]
        if pipeline is not None:  # EVAL: a pipeline's EVALSHA would first ask SCRIPT EXISTS
            pipeline.eval(_RELEASE, 2, *_keys(self.app_id), *args)
        else:
            _script(runtime.redis_client(), _RELEASE)(keys=list(_keys(self.app_id)), args=args)
