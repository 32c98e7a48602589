"""Which sessions each account has, so that they can be listed and ended at once.

Sessions themselves are Flask-Session's Redis keys (`docora:session:<sid>`, see sessions.py).
Next to them, one hash per account, `docora:account-sessions:<account id>`, maps a handle (a
digest of the session id: the id itself is a credential and never leaves the server) to when
and from where that session logged in. Ending an account's sessions deletes their keys; the
account's session epoch (accounts.session_epoch, checked on every request) is what makes the
end certain even for a request in flight that would write its session back afterwards.
"""
import hashlib
import json
from datetime import datetime, timedelta, timezone

from ... import runtime

SESSION_PREFIX = "docora:session:"
INDEX_PREFIX = "docora:account-sessions:"


def _index_key(account_id):
    return f"{INDEX_PREFIX}{account_id}"


def handle_of(sid):
    """The name a session goes by outside the server: a digest of its id."""
    return hashlib.sha256(sid.encode()).hexdigest()[:16]


def add(account_id, sid, source_address, user_agent, lifetime_s):
    """Remember a new session of the account; the index lives as long as its newest session can."""
    entry = {"sid": sid, "started_at": datetime.now(timezone.utc).isoformat(),
             "source_address": source_address, "user_agent": (user_agent or "")[:200]}
    pipe = runtime.redis_client().pipeline()
    pipe.hset(_index_key(account_id), handle_of(sid), json.dumps(entry))
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
               for handle, raw in client.hgetall(_index_key(account_id)).items()}
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
                     # Each request sets the key's lifetime back to the idle limit.
                     "last_seen_at": idle_end - timedelta(seconds=idle_s),
                     "ends_at": min(idle_end, started + timedelta(seconds=max_s))})
    if gone:
        client.hdel(_index_key(account_id), *gone)
    return sorted(live, key=lambda s: s["started_at"])


def end_all(account_id):
    """Delete every session of the account and its index; returns how many keys existed."""
    client = runtime.redis_client()
    entries = client.hgetall(_index_key(account_id))
    keys = [SESSION_PREFIX + json.loads(raw)["sid"] for raw in entries.values()]
    pipe = client.pipeline()
    if keys:
        pipe.delete(*keys)
    pipe.delete(_index_key(account_id))
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
