"""One log line per change of an outage, not one per failed call: while Redis or PostgreSQL is
down, a consumer's four workers, its scheduler and its watchdog each fail every fraction of a
second, and huey logs each failure with its traceback (2,870 lines in 12 s of a Redis outage).

`failed()` says "down" on the first failure, "still down" at most every REPEAT_S seconds (with
how many calls failed meanwhile), and nothing otherwise; `ok()` (the watchdog calls it when a
step that needs the service went through) says "back" with how long it was down. The state is
per process: each process says it once for itself. `HueyOutageFilter` routes huey's own
connection-error records through it."""
import logging
import threading
import time

import psycopg
import redis

log = logging.getLogger("docora_admin.outages")

REPEAT_S = 30


class Outage:
    def __init__(self, service):
        self.service = service
        self._lock = threading.Lock()
        self._since = None  # monotonic time of the first failure, None while up
        self._reported = None
        self._failures = 0

    @property
    def down(self):
        return self._since is not None

    def failed(self, what, exc):
        """A call needing the service failed with `exc` while doing `what`."""
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            if self._since is None:
                self._since = self._reported = now
                self._failures = 0
                line = (f"{self.service} unavailable ({_describe(exc)}) while {what}; "
                        f"retrying quietly, a line every {REPEAT_S} s until it is back")
            elif now - self._reported >= REPEAT_S:
                line = (f"{self.service} still unavailable after {now - self._since:.0f} s "
                        f"({self._failures} failed calls since the last line)")
                self._reported, self._failures = now, 0
            else:
                return
        log.error(line)

    def ok(self):
        """A call needing the service went through."""
        with self._lock:
            if self._since is None:
                return
            took, failures = time.monotonic() - self._since, self._failures
            self._since = self._reported = None
            self._failures = 0
        log.warning("%s back after %.1f s (%d more failed calls)", self.service, took, failures)


REDIS = Outage("Redis")
POSTGRES = Outage("PostgreSQL")


def _describe(exc):
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


def outage_of(exc):
    """The Outage an exception belongs to (a connection to Redis or PostgreSQL lost), or None
    for any other error, which is logged as it always was."""
    from .db import DatabaseUnavailable

    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return REDIS
    if isinstance(exc, (DatabaseUnavailable, psycopg.OperationalError)):
        return POSTGRES
    return None


class HueyOutageFilter(logging.Filter):
    """On huey's consumer loggers: a record of a lost Redis or PostgreSQL connection goes to the
    outage's one line instead; every other record passes as it is."""

    LOGGERS = ("huey.consumer", "huey.consumer.Worker", "huey.consumer.Scheduler")

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        outage = outage_of(exc) if exc is not None else None
        if outage is None:
            return True
        what = record.getMessage().rstrip(".").lower()
        outage.failed(what.removeprefix("error ").removeprefix("while "), exc)
        return False


def install_huey_filter():
    flt = HueyOutageFilter()
    for name in HueyOutageFilter.LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HueyOutageFilter) for f in logger.filters):
            logger.addFilter(flt)
