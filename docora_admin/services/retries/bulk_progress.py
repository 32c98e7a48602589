"""Live counters of a bulk retry in the Redis hash docora:bulk:{operation_id}.

The hash is the fast path the UI polls; PostgreSQL (bulk_operations) is the durable record and
the answer once the hash has expired. Counters only ever move by HINCRBY, so any number of
workers can report at once.
"""
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


def write_outcome(op):
    """Overwrite the outcome counters with the operation row's (recounted from PostgreSQL) while
    the hash lives; an expired hash is not brought back."""
    script = ("if redis.call('EXISTS', KEYS[1]) == 1 then "
              "redis.call('HSET', KEYS[1], 'delivered', ARGV[1], 'delivery_failed', ARGV[2], "
              "'gone', ARGV[3], 'settled', ARGV[4]) return 1 end return 0")
    runtime.redis_client().eval(script, 1, _key(op["id"]), op["delivered"],
                                op["delivery_failed"], op["gone"],
                                "true" if op["settled_at"] else "false")


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
    return progress


def write_from_record(op):
    """Overwrite the hash with an operation's durable counters and status from PostgreSQL, and
    give it a fresh TTL: used when an operation resumes or ends. `cancelled` only ever goes from
    "false" to "true": a cancel flagged in the hash alone survives the rewrite."""
    key = _key(op["id"])
    pipe = runtime.redis_client().pipeline()
    mapping = {field: op[field] for field in COUNTERS}
    mapping["status"] = op["status"]
    if op.get("error"):
        mapping["error"] = op["error"]
    pipe.hset(key, mapping=mapping)
    if op["cancel_requested"] or op["status"] == "cancelled":
        pipe.hset(key, "cancelled", "true")
    else:
        pipe.hsetnx(key, "cancelled", "false")
    pipe.expire(key, TTL_SECONDS)
    pipe.execute()
