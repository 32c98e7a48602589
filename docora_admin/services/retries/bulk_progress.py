"""Live counters of a bulk retry in the Redis hash docora:bulk:{operation_id}.

The hash is the fast path the UI polls; PostgreSQL (bulk_operations) is the durable record and
the answer once the hash has expired. Counters only ever move by HINCRBY, so any number of
workers can report at once.
"""
import json
import re
import secrets

from ... import runtime

KEY_PREFIX = "docora:bulk:"
TTL_SECONDS = 3600
OPERATION_ID_RE = re.compile(r"^bulk_[0-9a-f]{16}$")
COUNTERS = ("total", "completed", "succeeded", "failed", "skipped", "delivered",
            "delivery_failed", "gone")


def generate_operation_id():
    """A new id: bulk_<16 hex>."""
    return f"bulk_{secrets.token_hex(8)}"


def is_valid_operation_id(operation_id):
    return isinstance(operation_id, str) and bool(OPERATION_ID_RE.match(operation_id))


def _key(operation_id):
    return f"{KEY_PREFIX}{operation_id}"


def create_progress(operation_id, total):
    """Write the hash with total, zero counters, cancelled="false", and a 3600 s TTL."""
    pipe = runtime.redis_client().pipeline()
    pipe.hset(_key(operation_id), mapping={
        "total": total, "completed": 0, "succeeded": 0, "failed": 0, "skipped": 0,
        "delivered": 0, "delivery_failed": 0, "gone": 0, "cancelled": "false",
        "status": "running"})
    pipe.expire(_key(operation_id), TTL_SECONDS)
    pipe.execute()


def increment_progress(operation_id, succeeded=0, failed=0, skipped=0):
    """Add one chunk's outcome; completed moves by the sum. No-op for an expired hash.

    Returns whether the hash says cancelled, so the task learns of a cancel in the same round
    trip."""
    return _increment(operation_id, {"succeeded": succeeded, "failed": failed,
                                     "skipped": skipped,
                                     "completed": succeeded + failed + skipped})


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


def _increment(operation_id, amounts, pipeline=None):
    args = [part for field, amount in amounts.items() if amount for part in (field, amount)]
    if pipeline is not None:
        pipeline.eval(_INCREMENT, 1, _key(operation_id), *args)
        return None
    client = runtime.redis_client()
    return client.eval(_INCREMENT, 1, _key(operation_id), *args) == b"true"


def cancel_progress(operation_id):
    """Set cancelled="true" on an existing hash; return False (creating nothing) if it is gone."""
    # HSET only when the key exists, atomically, so an unknown id never creates a key.
    script = ("if redis.call('EXISTS', KEYS[1]) == 1 then "
              "redis.call('HSET', KEYS[1], 'cancelled', 'true') return 1 end return 0")
    return bool(runtime.redis_client().eval(script, 1, _key(operation_id)))


def is_cancelled(operation_id):
    return runtime.redis_client().hget(_key(operation_id), "cancelled") == b"true"


def set_status(operation_id, status):
    """Record the operation's phase (running, cancelling, completed, cancelled, failed)."""
    script = ("if redis.call('EXISTS', KEYS[1]) == 1 then "
              "redis.call('HSET', KEYS[1], 'status', ARGV[1]) return 1 end return 0")
    runtime.redis_client().eval(script, 1, _key(operation_id), status)


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

# KEYS[1] the hash; ARGV: `only_if_exists` ("1": do nothing to a missing hash), then field/value
# pairs to set, "--", then field/value pairs raised to at least value.
_REWRITE = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local i = 2
while ARGV[i] ~= '--' do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
i = i + 1
while ARGV[i] do
  local now = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > now then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
return 1
"""


def _rewrite(operation_id, setting, raising, only_if_exists=True, pipeline=None):
    args = ["1" if only_if_exists else "0"]
    for field, value in setting.items():
        args += [field, value]
    args.append("--")
    for field, value in raising.items():
        args += [field, value]
    (pipeline or runtime.redis_client()).eval(_REWRITE, 1, _key(operation_id), *args)


def write_outcome(op):
    """Bring the outcome counters up to the operation row's recount (from PostgreSQL; never
    down), and its held summary, while the hash lives; an expired hash is not brought back."""
    _rewrite(op["id"], {"settled": "true" if op["settled_at"] else "false",
                        "held": json.dumps(op.get("held") or {}, default=str)},
             {field: op[field] for field in GROWING})


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
    delivery counters only ever go up), and give it a fresh TTL: used when an operation resumes
    or ends. `cancelled` only ever goes from
    "false" to "true": a cancel flagged in the hash alone survives the rewrite."""
    key = _key(op["id"])
    pipe = runtime.redis_client().pipeline()
    mapping = {field: op[field] for field in COUNTERS if field not in GROWING}
    mapping["status"] = op["status"]
    if op.get("error"):
        mapping["error"] = op["error"]
    _rewrite(op["id"], mapping, {field: op[field] for field in GROWING},
             only_if_exists=False, pipeline=pipe)
    if op["cancel_requested"] or op["status"] == "cancelled":
        pipe.hset(key, "cancelled", "true")
    else:
        pipe.hsetnx(key, "cancelled", "false")
    pipe.expire(key, TTL_SECONDS)
    pipe.execute()
