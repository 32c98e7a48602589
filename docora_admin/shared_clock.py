"""One clock for every machine: PostgreSQL's, read without a round trip.

Whether a look at a repository is newer than a link's job is decided by comparing times that
different machines write (the link's due time is PostgreSQL's now(); a look is stamped by the
machine that made it, and read by another). A machine's wall clock may be off by seconds; its
monotonic clock measures intervals well. So each process measures, with one query, where
PostgreSQL's clock stands against its monotonic clock, and reads PostgreSQL's time from that
(again every RECALIBRATE_S). The monotonic reading is taken after the answer arrives, so the
estimate is never ahead of the server's clock, and behind it by at most the query's round trip:
a look stamped with it never passes for newer than it is.
"""
import threading
import time

from . import db
from .repositories import server_clock

RECALIBRATE_S = 60

_lock = threading.Lock()
_base = None  # (PostgreSQL's seconds, this process's monotonic seconds at that moment)


def now():
    """PostgreSQL's clock now, as Unix seconds (float)."""
    base = _base
    moment = time.monotonic()
    if base is None or moment - base[1] > RECALIBRATE_S:
        base = _calibrate(base)
        moment = time.monotonic()
    return base[0] + (moment - base[1])


def _calibrate(previous):
    global _base
    with _lock:
        if _base is not previous:  # another thread just did
            return _base
        try:
            with db.connection() as conn:
                seconds = server_clock.clock_seconds(conn)
        except db.DatabaseUnavailable:
            if previous is None:
                raise
            return previous  # an old reading stays good for far longer than an outage
        _base = (seconds, time.monotonic())
        return _base


def forget():
    """Measure again at the next call (tests)."""
    global _base
    _base = None
