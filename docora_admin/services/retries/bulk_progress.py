"""Live counters of a bulk retry in the Redis hash docora:bulk:{operation_id}.

The hash is the fast path the UI polls; PostgreSQL (bulk_operations) is the durable record and
the answer once the hash has expired. Counters only ever move by HINCRBY, so any number of
workers can report at once. Next to them the hash keeps a copy of the operation's row
(`record`, JSON, replaced only by a copy of a later `revision`: every UPDATE of the row moves
it on) and `beat`, the reset's last sign of life by Redis's clock: together they are all a poll
needs (read_live: one round trip), so polling never reads PostgreSQL while the hash lives.
"""
import json
import re
import secrets
from datetime import datetime, timezone
from decimal import Decimal

from ... import runtime

KEY_PREFIX = "docora:bulk:"
TTL_SECONDS = 3600
OPERATION_ID_RE = re.compile(r"^bulk_[0-9a-f]{16}$")
COUNTERS = ("total", "completed", "succeeded", "failed", "skipped", "delivered",
            "delivery_failed", "gone")
# The columns of the operation's row a poll shows (operations.operation_json), and which of them
# are moments.
RECORD_FIELDS = ("id", "kind", "scope", "app_id", "filter", "requested_by", "status",
                 *COUNTERS, "cancel_requested", "error", "created_at", "finished_at",
                 "paused_at", "settled_at", "held", "stalled_at", "resumed_at", "resumes",
                 "revision")
MOMENTS = ("created_at", "finished_at", "paused_at", "settled_at", "stalled_at", "resumed_at")
# Lua: the server's clock as seconds (TIME is allowed in scripts since Redis 5).
_NOW = "local t = redis.call('TIME') local now = t[1] .. '.' .. string.format('%06d', t[2])"


def generate_operation_id():
    """A new id: bulk_<16 hex>."""
    return f"bulk_{secrets.token_hex(8)}"


def is_valid_operation_id(operation_id):
    return isinstance(operation_id, str) and bool(OPERATION_ID_RE.match(operation_id))


def _key(operation_id):
    return f"{KEY_PREFIX}{operation_id}"


def create_progress(operation_id, total, record=None):
    """Write the hash with total, zero counters, cancelled="false", the operation's row when
    given (`record`), its first beat, and a 3600 s TTL."""
    pipe = runtime.redis_client().pipeline()
    pipe.hset(_key(operation_id), mapping={
        "total": total, "completed": 0, "succeeded": 0, "failed": 0, "skipped": 0,
        "delivered": 0, "delivery_failed": 0, "gone": 0, "cancelled": "false",
        "status": "running"})
    if record is not None:
        _rewrite(operation_id, {}, {}, record=record, only_if_exists=False, pipeline=pipe,
                 beat=True)
    pipe.expire(_key(operation_id), TTL_SECONDS)
    pipe.execute()


def increment_progress(operation_id, succeeded=0, failed=0, skipped=0):
    """Add one chunk's outcome; completed moves by the sum. No-op for an expired hash.

    Returns whether the hash says cancelled, so the task learns of a cancel in the same round
    trip."""
    return _increment(operation_id, {"succeeded": succeeded, "failed": failed,
                                     "skipped": skipped,
                                     "completed": succeeded + failed + skipped}, beat=True)


def increment_deliveries(operation_id, delivered=0, delivery_failed=0, pipeline=None):
    """Add links whose delivery episode, started by this operation, just ended (on `pipeline`
    when given: the caller runs it)."""
    _increment(operation_id, {"delivered": delivered, "delivery_failed": delivery_failed},
               pipeline)


# Every HINCRBY at once, and only while the hash exists: an expired hash is not resurrected as a
# stub without TTL (PostgreSQL still holds the durable counters). Replies the cancelled field.
_INCREMENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return redis.call('HGET', KEYS[1], 'cancelled')
"""
# The same for the reset's own chunks, which are its heartbeat too.
_INCREMENT_BEAT = _INCREMENT.replace("return redis.call", _NOW + """
redis.call('HSET', KEYS[1], 'beat', now)
return redis.call""")


def _increment(operation_id, amounts, pipeline=None, beat=False):
    args = [part for field, amount in amounts.items() if amount for part in (field, amount)]
    script = _INCREMENT_BEAT if beat else _INCREMENT
    if pipeline is not None:
        pipeline.eval(script, 1, _key(operation_id), *args)
        return None
    return runtime.redis_client().eval(script, 1, _key(operation_id), *args) == b"true"


def cancel_progress(operation_id):
    """Set cancelled="true" on an existing hash; return False (creating nothing) if it is gone."""
    # HSET only when the key exists, atomically, so an unknown id never creates a key.
    script = ("if redis.call('EXISTS', KEYS[1]) == 1 then "
              "redis.call('HSET', KEYS[1], 'cancelled', 'true') return 1 end return 0")
    return bool(runtime.redis_client().eval(script, 1, _key(operation_id)))


def is_cancelled(operation_id):
    return runtime.redis_client().hget(_key(operation_id), "cancelled") == b"true"


def set_status(operation_id, status, record=None):
    """Record the operation's phase (running, cancelling, completed, cancelled, failed), with its
    row as just changed when given; going back to running is a beat (the reset starts again)."""
    _rewrite(operation_id, {"status": status}, {}, record=record, beat=status == "running")


def mark_failed(operation_id, message):
    """The operation stopped on an error: keep the message for the UI."""
    script = ("if redis.call('EXISTS', KEYS[1]) == 1 then "
              "redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[1]) return 1 end "
              "return 0")
    runtime.redis_client().eval(script, 1, _key(operation_id), message[:500])


# Counters that only grow: what the attempt log has counted as ended. A rewrite from the
# operation's row (its last recount) must not take back what live increments already added, or
# the panel reads "18 delivered", then 14, then 18 again.
GROWING = ("delivered", "delivery_failed", "gone")

# KEYS[1] the hash; ARGV: `only_if_exists` ("1": do nothing to a missing hash), the row's
# revision and its JSON copy ("" and "": none), whether this is a beat ("1"), then field/value
# pairs to set, "--", then field/value pairs raised to at least value. A copy older than the
# one the hash holds changes nothing but the raised fields (they only grow anyway).
_REWRITE = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local fresh = true
if ARGV[2] ~= '' then
  local held = tonumber(redis.call('HGET', KEYS[1], 'revision') or '-1')
  if tonumber(ARGV[2]) < held then fresh = false
  else redis.call('HSET', KEYS[1], 'revision', ARGV[2], 'record', ARGV[3]) end
end
if fresh and ARGV[4] == '1' then
""" + _NOW + """
  redis.call('HSET', KEYS[1], 'beat', now)
end
local i = 5
while ARGV[i] ~= '--' do
  if fresh then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
i = i + 1
while ARGV[i] do
  local now = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > now then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
return 1
"""


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _record_json(op):
    return json.dumps({field: op.get(field) for field in RECORD_FIELDS}, default=_jsonable)


def _rewrite(operation_id, setting, raising, only_if_exists=True, pipeline=None, record=None,
             beat=False):
    args = ["1" if only_if_exists else "0"]
    if record is not None and record.get("revision") is not None:
        args += [record["revision"], _record_json(record)]
    else:
        args += ["", ""]
    args.append("1" if beat else "0")
    for field, value in setting.items():
        args += [field, value]
    args.append("--")
    for field, value in raising.items():
        args += [field, value]
    (pipeline or runtime.redis_client()).eval(_REWRITE, 1, _key(operation_id), *args)


def write_record(op, beat=False):
    """Keep the operation's row (as just changed in PostgreSQL) in its live hash, unless the
    hash holds a later revision or is gone: what a poll shows. `beat`: the reset is alive."""
    _rewrite(op["id"], {}, {}, record=op, beat=beat)


def read_live(operation_id):
    """One round trip: (the hash's fields as str, the Redis server's time as an aware datetime)
    or None when the hash is gone or holds no copy of the row. The copy's moments are parsed."""
    pipe = runtime.redis_client().pipeline(transaction=False)
    pipe.hgetall(_key(operation_id))
    pipe.time()
    raw, (seconds, micros) = pipe.execute()
    if b"record" not in raw:
        return None
    values = {k.decode(): v.decode() for k, v in raw.items()}
    record = json.loads(values["record"])
    for field in MOMENTS:
        if record.get(field):
            record[field] = datetime.fromisoformat(record[field])
    values["record"] = record
    return values, datetime.fromtimestamp(seconds + micros / 1e6, timezone.utc)


def write_outcome(op):
    """Bring the outcome counters up to the operation row's recount (from PostgreSQL; never
    down), and its held summary, while the hash lives; an expired hash is not brought back."""
    _rewrite(op["id"], {"settled": "true" if op["settled_at"] else "false",
                        "held": json.dumps(op.get("held") or {}, default=str)},
             {field: op[field] for field in GROWING}, record=op)


def get_progress(operation_id):
    """Counters as ints, cancelled as bool; None when the hash is gone."""
    raw = runtime.redis_client().hgetall(_key(operation_id))
    if not raw:
        return None
    values = {k.decode(): v.decode() for k, v in raw.items()}
    progress = {"operation_id": operation_id}
    for field in COUNTERS:
        progress[field] = int(values.get(field, 0))
    progress["cancelled"] = values.get("cancelled") == "true"
    progress["status"] = values.get("status", "running")
    if "error" in values:
        progress["error"] = values["error"]
    progress["held"] = json.loads(values["held"]) if values.get("held") else None
    return progress


def write_from_record(op):
    """Overwrite the hash with an operation's durable counters and status from PostgreSQL (the
    delivery counters only ever go up), with its row's copy and a beat, and give it a fresh TTL:
    used when an operation starts again or ends. `cancelled` only ever goes from "false" to
    "true": a cancel flagged in the hash alone survives the rewrite."""
    key = _key(op["id"])
    pipe = runtime.redis_client().pipeline()
    mapping = {field: op[field] for field in COUNTERS if field not in GROWING}
    mapping["status"] = op["status"]
    if op.get("error"):
        mapping["error"] = op["error"]
    _rewrite(op["id"], mapping, {field: op[field] for field in GROWING},
             only_if_exists=False, pipeline=pipe, record=op, beat=True)
    if op["cancel_requested"] or op["status"] == "cancelled":
        pipe.hset(key, "cancelled", "true")
    else:
        pipe.hsetnx(key, "cancelled", "false")
    pipe.expire(key, TTL_SECONDS)
    pipe.execute()
