"""Failed-login limits per source address and per username, counted atomically in Redis.

Each attempt is reserved, counted as a failure against both limits, before the password is
checked, by one Lua script that checks both counters and increments them; a correct password
then forgives it. So 40 wrong logins in parallel get exactly the limit through: a separate
"check, then record" let the ones racing between the two steps slip past.

The username is counted in its canonical form (trimmed, case-folded: accounts are looked up
case-insensitively), so `Admin` and `aDmin` share `admin`'s budget.

The per-username limit stops a guesser spread over many addresses; it must not let that guesser
lock the owner out (OWASP's device cookies). A browser that logged in to the account before
carries a signed device token for it (auth.py issues it); while the username is locked for
everyone else, that device keeps a small budget of its own, so the owner logs in from their own
browser. Past the limit, anyone else waits DELAY_S, then twice that, … between attempts
(progressive delay, not a wall for the rest of the window). An admin sees a locked account on
its page and can lift the lock.
"""
import hashlib

from . import runtime

ADDRESS_LIMIT = 5
ADDRESS_WINDOW_S = 60
USERNAME_LIMIT = 10
USERNAME_WINDOW_S = 15 * 60
DEVICE_LIMIT = 5  # per device token, while its username is locked

# Past the username's limit, attempts are not walled off for the rest of the window: the next
# one is allowed DELAY_S after the last, then twice that, and so on (progressive delay), so an
# owner without a device token is slowed, not locked out, and a guesser gets a handful more
# tries per window instead of ten.
DELAY_S = 30

ADDRESS_BLOCKED = "Too many failed logins; try again in a minute"
USERNAME_BLOCKED = "Too many failed logins for this username; try again in {wait}"
USERNAME_BLOCKED_START = USERNAME_BLOCKED.split("{", 1)[0]

KEY_PREFIX = "docora:login-failures:"

# KEYS: address counter, username counter, device counter (a key of its own per device token,
# or one no token can have), the username's next-allowed time. ARGV: address limit, window,
# username limit, window, device limit, whether a device token came, the first delay.
# A window opens with the first counted attempt (fixed window). Returns {0, 0} (go ahead),
# {1, 0} (address blocked) or {2, seconds to wait} (username delayed).
_RESERVE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return {1, 0} end
local now = tonumber(redis.call('TIME')[1])
local limit = tonumber(ARGV[3])
local counted = {KEYS[1], KEYS[2]}
if tonumber(redis.call('GET', KEYS[2]) or '0') >= limit then
  if ARGV[6] == '1' and tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[5]) then
    counted = {KEYS[1], KEYS[3]}
  else
    local next_at = tonumber(redis.call('GET', KEYS[4]) or '0')
    if now < next_at then return {2, next_at - now} end
  end
end
local windows = {ARGV[2], ARGV[4]}
for i, key in ipairs(counted) do
  local n = redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, windows[i]) end
  if key == KEYS[2] and n >= limit then
    local wait = tonumber(ARGV[7]) * 2 ^ math.min(n - limit, 10)
    redis.call('SET', KEYS[4], now + wait, 'EX', math.max(redis.call('TTL', key), 1))
  end
end
return {0, 0}
"""

# The address proved it knows the password: its slate is wiped, and so is the device's. The
# username only gets back the one attempt just reserved, so the owner's own login does not hand
# a guesser elsewhere a fresh budget; an attempt a device's own budget paid for (the device
# counter exists only while the username is locked) gives the username nothing back.
_FORGIVE = """
redis.call('DEL', KEYS[1])
if redis.call('DEL', KEYS[3]) == 1 then return 0 end
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if count > 1 then redis.call('DECR', KEYS[2]) else redis.call('DEL', KEYS[2]) end
return 0
"""


def canonical(username):
    """The one form of a username for look-up, limits and audit: trimmed and case-folded."""
    return (username or "").strip().casefold()


def _user_key(username):
    # Hashed: a username is whatever a client typed, of any length.
    digest = hashlib.sha256(canonical(username).encode("utf-8", "replace")).hexdigest()[:32]
    return f"{KEY_PREFIX}user:{digest}"


def _keys(address, username, device=None):
    user = _user_key(username)
    return [f"{KEY_PREFIX}addr:{address}", user, f"{user}:device:{device or '-'}",
            f"{user}:next"]


def reserve(address, username, device=None):
    """Count one login attempt for `address` and `username` unless either has used up its
    limit; `device` is the verified device token this browser holds for the username (it keeps
    its own budget while the username is locked). Returns None when the attempt may go ahead,
    else the one-line reason it may not."""
    client = runtime.redis_client()
    blocked, wait = client.register_script(_RESERVE)(
        keys=_keys(address, username, device),
        args=[ADDRESS_LIMIT, ADDRESS_WINDOW_S, USERNAME_LIMIT, USERNAME_WINDOW_S, DEVICE_LIMIT,
              "1" if device else "0", DELAY_S])
    if int(blocked) == 2:
        return USERNAME_BLOCKED.format(wait=_in_words(int(wait)))
    return ADDRESS_BLOCKED if int(blocked) == 1 else None


def _in_words(seconds):
    if seconds < 90:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} minutes"


def forgive(address, username, device=None):
    """After a correct password: clear the address's (and device's) failures, give the
    username back the attempt reserved for this login."""
    runtime.redis_client().register_script(_FORGIVE)(keys=_keys(address, username, device))


def first_refusal(address, username, reason):
    """True the first time in a limit window that `reason` refuses this address (or username),
    so a lock-out is audited once, not once per refused attempt of a flood."""
    if reason == ADDRESS_BLOCKED:
        key, window = _keys(address, username)[0], ADDRESS_WINDOW_S
    else:
        key, window = _user_key(username), USERNAME_WINDOW_S
    return bool(runtime.redis_client().set(f"{key}:refusal-noted", 1, nx=True, ex=window))


def lock_state(username):
    """{failures, locked, seconds_left, next_in}: the username's failures in its window, whether
    it is past the limit, how long the window still runs and how long until the next attempt is
    allowed (0: now)."""
    client = runtime.redis_client()
    key = _user_key(username)
    failures = int(client.get(key) or 0)
    next_at = int(client.get(f"{key}:next") or 0)
    now = int(client.time()[0])
    return {"failures": failures, "locked": failures >= USERNAME_LIMIT,
            "seconds_left": max(0, client.ttl(key)) if failures else 0,
            "next_in": max(0, next_at - now)}


def lift(username):
    """An admin ends the username's lock: its failures are forgotten."""
    key = _user_key(username)
    runtime.redis_client().delete(key, f"{key}:refusal-noted", f"{key}:next")
