"""Which sessions each account has, so that they can be listed and ended at once.

Sessions themselves are Flask-Session's Redis keys (`docora:session:<sid>`, see sessions.py).
Next to them, one hash per account, `docora:account-sessions:<account id>`, maps a handle (a
digest of the session id: the id itself is a credential and never leaves the server) to when
and from where that session logged in. Ending an account's sessions deletes their keys; the
account's session epoch (accounts.session_epoch) is what makes the end certain even for a
request in flight that would write its session back afterwards.

The index also holds the account's current epoch (field `epoch`), so that checking a session
costs one Redis round trip and no PostgreSQL query (check). A change that moves the epoch marks
the field "changing:<token>" inside its transaction (mark_changing: no commit when Redis cannot
be told) and writes the new epoch once committed (end_all); meanwhile, or when the field is
missing or another epoch, the check says UNKNOWN and the caller asks PostgreSQL.
"""
import hashlib
import json
import secrets
from datetime import datetime, timedelta, timezone

from ... import runtime

SESSION_PREFIX = "docora:session:"
INDEX_PREFIX = "docora:account-sessions:"


EPOCH_FIELD = "epoch"  # never a handle: those are 16 hex digits
VALID, GONE, UNKNOWN = "valid", "gone", "unknown"


def _index_key(account_id):
    return f"{INDEX_PREFIX}{account_id}"


def check(account_id, sid, epoch):
    """One round trip: GONE when the session is no longer listed (ended by an admin, or its
    account's sessions were ended), VALID when it is and the account's epoch is `epoch`, else
    UNKNOWN (ask PostgreSQL, then remember_epoch)."""
    listed, known = runtime.redis_client().hmget(_index_key(account_id), handle_of(sid),
                                                 EPOCH_FIELD)
    if listed is None:
        return GONE
    return VALID if known == str(epoch).encode() else UNKNOWN


# Fill the epoch when the field is missing (never over a change's mark or a newer epoch), and
# only on an index that exists (one without its TTL would outlive its sessions).
_REMEMBER = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) end
"""


def remember_epoch(account_id, epoch):
    """The epoch PostgreSQL just gave for the account, for the next checks to use."""
    runtime.redis_client().eval(_REMEMBER, 1, _index_key(account_id), epoch)


def mark_changing(account_id, lifetime_s):
    """Before committing a change that moves the account's epoch: until end_all, checks ask
    PostgreSQL. Returns the mark's token (for end_all and forget_change)."""
    token = f"changing:{secrets.token_hex(8)}"
    pipe = runtime.redis_client().pipeline()
    pipe.hset(_index_key(account_id), EPOCH_FIELD, token)
    pipe.expire(_index_key(account_id), lifetime_s)
    pipe.execute()
    return token


# Replace this change's mark (KEYS[1] the index; ARGV[1] its token, ARGV[2] the new value or ""
# to drop the field): another change marked since is left for that change to finish.
_SETTLE_MARK = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'epoch')
else redis.call('HSET', KEYS[1], 'epoch', ARGV[2]) end
return 1
"""


def forget_change(account_id, token):
    """The change marked by `token` was rolled back: checks may trust the field again once it is
    filled."""
    runtime.redis_client().eval(_SETTLE_MARK, 1, _index_key(account_id), token, "")


def handle_of(sid):
    """The name a session goes by outside the server: a digest of its id."""
    return hashlib.sha256(sid.encode()).hexdigest()[:16]


def add(account_id, sid, source_address, user_agent, lifetime_s, epoch=None):
    """Remember a new session of the account (and the account's epoch, as read for this login,
    when the index does not hold one); the index lives as long as its newest session can."""
    entry = {"sid": sid, "started_at": datetime.now(timezone.utc).isoformat(),
             "source_address": source_address, "user_agent": (user_agent or "")[:200]}
    pipe = runtime.redis_client().pipeline()
    pipe.hset(_index_key(account_id), handle_of(sid), json.dumps(entry))
    if epoch is not None:
        pipe.hsetnx(_index_key(account_id), EPOCH_FIELD, epoch)
    pipe.expire(_index_key(account_id), lifetime_s)
    pipe.execute()


def is_listed(account_id, sid):
    """Whether the session is still one of the account's (an admin has not ended it)."""
    return bool(runtime.redis_client().hexists(_index_key(account_id), handle_of(sid)))


def list_sessions(account_id, idle_s, max_s):
    """The account's live sessions, oldest first: handle, started_at, source_address,
    user_agent, last_seen_at and ends_at (whichever of the idle and absolute limits comes
    first). Entries whose session is gone are dropped from the index on the way."""
    client = runtime.redis_client()
    entries = {handle.decode(): json.loads(raw)
               for handle, raw in client.hgetall(_index_key(account_id)).items()
               if handle != EPOCH_FIELD.encode()}
    pipe = client.pipeline()
    for entry in entries.values():
        pipe.pttl(SESSION_PREFIX + entry["sid"])
    now = datetime.now(timezone.utc)
    live, gone = [], []
    for (handle, entry), ttl_ms in zip(entries.items(), pipe.execute()):
        if ttl_ms < 0:
            gone.append(handle)
            continue
        started = datetime.fromisoformat(entry["started_at"])
        idle_end = now + timedelta(milliseconds=ttl_ms)
        live.append({"handle": handle, "started_at": started,
                     "source_address": entry["source_address"],
                     "user_agent": entry["user_agent"],
                     # Requests set the key's lifetime back to the idle limit (at most
                     # every sessions.REFRESH_S seconds).
                     "last_seen_at": idle_end - timedelta(seconds=idle_s),
                     "ends_at": min(idle_end, started + timedelta(seconds=max_s))})
    if gone:
        client.hdel(_index_key(account_id), *gone)
    return sorted(live, key=lambda s: s["started_at"])


def end_all(account_id, epoch=None, token=None):
    """Delete every session of the account; with the epoch a committed change moved it to (and
    that change's mark), keep that epoch for the checks. Returns how many session keys existed."""
    client = runtime.redis_client()
    entries = {handle: raw for handle, raw in client.hgetall(_index_key(account_id)).items()
               if handle != EPOCH_FIELD.encode()}
    keys = [SESSION_PREFIX + json.loads(raw)["sid"] for raw in entries.values()]
    pipe = client.pipeline()
    if keys:
        pipe.delete(*keys)
        pipe.hdel(_index_key(account_id), *entries)
    if token is not None:
        pipe.eval(_SETTLE_MARK, 1, _index_key(account_id), token, epoch)
    results = pipe.execute()
    return results[0] if keys else 0


def end_one(account_id, handle):
    """Delete one session of the account by its handle; False when there is no such session."""
    client = runtime.redis_client()
    raw = client.hget(_index_key(account_id), handle)
    if raw is None:
        return False
    pipe = client.pipeline()
    pipe.delete(SESSION_PREFIX + json.loads(raw)["sid"])
    pipe.hdel(_index_key(account_id), handle)
    existed, _ = pipe.execute()
    return bool(existed)
