"""The links this process is delivering right now, and the renewal of their leases.

A claimed link (status scanning) holds a lease: its next_attempt_at is the time by which the job
must renew it. The watchdog thread of each consumer process renews the leases of the jobs running
in that process; a process that dies (or loses PostgreSQL for longer than a lease) stops
renewing, and the sweeper gives the link to a new job. Lease length: JOB_LEASE_SECONDS.
"""
import threading

from ... import db, runtime
from ...repositories import link_sweeps

_lock = threading.Lock()
_held = {}  # link id → generation


def hold(claim_row):
    with _lock:
        _held[claim_row["id"]] = claim_row["job_generation"]


def release(claim_row):
    with _lock:
        _held.pop(claim_row["id"], None)


def held():
    with _lock:
        return list(_held.items())


def renew():
    """Extend the lease of every link this process is delivering; return how many."""
    claims = held()
    with db.connection() as conn:
        if not claims:  # still proves that PostgreSQL answers (the watchdog relies on it)
            conn.execute("SELECT 1")
            return 0
        return link_sweeps.renew_leases(conn, claims, runtime.settings().job_lease_seconds)
