"""Readiness: do PostgreSQL and Redis answer, within a short time?

Both are asked at once, each in a thread of a small pool, and the answer waits at most
READY_TIMEOUT_S for both: a server that hangs (a black-holed port, a stuck failover) makes the
probe say so in time instead of hanging the probe. A check still running past the deadline
finishes in the background, bounded by the pool's and the Redis client's own timeouts.
"""
import concurrent.futures
import time

from ... import db, runtime

READY_TIMEOUT_S = 1.0
_checks_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4,
                                                     thread_name_prefix="docora-readyz")


def _check_postgresql():
    with db.connection() as conn:
        conn.execute("SELECT 1")


def _check_redis():
    runtime.redis_client().ping()


CHECKS = {"postgresql": _check_postgresql, "redis": _check_redis}


def readiness(timeout=READY_TIMEOUT_S):
    """{"ready": bool, "checks": {name: "ok" | what went wrong}} for PostgreSQL and Redis, in at
    most about `timeout` seconds."""
    deadline = time.monotonic() + timeout
    futures = {name: _checks_pool.submit(check) for name, check in CHECKS.items()}
    results = {}
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            results[name] = "ok"
        except concurrent.futures.TimeoutError:
            results[name] = f"no answer within {timeout:g} s"
        except Exception as exc:  # any failure of a check is "not ready", named, never a 500
            results[name] = f"unavailable ({exc.__class__.__name__})"
    return {"ready": all(value == "ok" for value in results.values()), "checks": results}
