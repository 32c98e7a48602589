"""Waiting out an outage of our own services (PostgreSQL, Redis) instead of failing a job: what
a job holds (a message taken off the queue, a file the app acknowledged but not yet recorded) is
safest with it, and every worker waiting keeps the queue in Redis until PostgreSQL is back."""
import logging
import time

import redis

from ... import db

log = logging.getLogger(__name__)

PATIENCE_S = 600  # how long a job waits out an outage of PostgreSQL or Redis
# Our own services failing: wait and try again rather than count an attempt against the app.
TRANSIENT = (db.DatabaseUnavailable, redis.ConnectionError, redis.TimeoutError)


def patiently(action, what, waited=None):
    """Run `action`; while PostgreSQL or Redis is unavailable, try again every 0.25 s doubling
    to 2 s for up to PATIENCE_S, then let the error out. `waited` (a list) is told whether it
    had to wait."""
    deadline = time.monotonic() + PATIENCE_S
    delay, told = 0.25, False
    while True:
        try:
            return action()
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise
            if not told:
                log.warning("%s: %s unavailable, trying again", what,
                            "database" if isinstance(exc, db.DatabaseUnavailable) else "Redis")
                told = True
            if waited is not None:
                waited.append(delay)
            time.sleep(delay)
            delay = min(delay * 2, 2)


def in_transaction(work):
    """Run `work(conn)` in a transaction of its own; return what it returns."""
    with db.connection() as conn:
        return work(conn)
