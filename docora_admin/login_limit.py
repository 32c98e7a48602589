"""Failed-login limits per source address and per username, counted atomically in Redis.

Each attempt is reserved, counted as a failure against both limits, before the password is
checked, by one Lua script that checks both counters and increments them; a correct password
then forgives it. So 40 wrong logins in parallel get exactly the limit through: a separate
"check, then record" let the ones racing between the two steps slip past.

The per-username limit is what stops a guesser spread over many addresses. Its price: such a
guesser can lock the admin out for up to USERNAME_WINDOW_S (delete the key shown by
`redis-cli --scan --pattern 'docora:login-failures:user:*'` to let them in sooner).
"""
import hashlib

from . import runtime

ADDRESS_LIMIT = 5
ADDRESS_WINDOW_S = 60
USERNAME_LIMIT = 10
USERNAME_WINDOW_S = 15 * 60

ADDRESS_BLOCKED = "Too many failed logins; try again in a minute"
USERNAME_BLOCKED = "Too many failed logins for this username; try again in 15 minutes"

KEY_PREFIX = "docora:login-failures:"

# KEYS: address counter, username counter. ARGV: address limit, window, username limit, window.
# A window opens with the first counted attempt (fixed window, like the counter it replaces).
_RESERVE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 1 end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[3]) then return 2 end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[i * 2]) end
end
return 0
"""

# The address proved it knows the password: its slate is wiped. The username only gets back the
# one attempt just reserved, so the admin's own login does not hand a guesser elsewhere a fresh
# budget.
_FORGIVE = """
redis.call('DEL', KEYS[1])
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if count > 1 then redis.call('DECR', KEYS[2]) else redis.call('DEL', KEYS[2]) end
return 0
"""


def _keys(address, username):
    # Hashed: a username is whatever a client typed, of any length.
    user_digest = hashlib.sha256(username.encode("utf-8")).hexdigest()[:32]
    return [f"{KEY_PREFIX}addr:{address}", f"{KEY_PREFIX}user:{user_digest}"]


def reserve(address, username):
    """Count one login attempt for `address` and `username` unless either has used up its
    limit. Returns None when the attempt may go ahead, else the one-line reason it may not."""
    client = runtime.redis_client()
    blocked = client.register_script(_RESERVE)(
        keys=_keys(address, username),
        args=[ADDRESS_LIMIT, ADDRESS_WINDOW_S, USERNAME_LIMIT, USERNAME_WINDOW_S])
    return {0: None, 1: ADDRESS_BLOCKED, 2: USERNAME_BLOCKED}[int(blocked)]


def forgive(address, username):
    """After a correct password: clear the address's failures, give the username back the
    attempt reserved for this login."""
    runtime.redis_client().register_script(_FORGIVE)(keys=_keys(address, username))


def first_refusal(address, username, reason):
    """True the first time in a limit window that `reason` refuses this address (or username),
    so a lock-out is audited once, not once per refused attempt of a flood."""
    if reason == ADDRESS_BLOCKED:
        key, window = _keys(address, username)[0], ADDRESS_WINDOW_S
    else:
        key, window = _keys(address, username)[1], USERNAME_WINDOW_S
    return bool(runtime.redis_client().set(f"{key}:refusal-noted", 1, nx=True, ex=window))
