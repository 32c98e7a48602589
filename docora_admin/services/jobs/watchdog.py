"""The consumer's housekeeping thread: what must happen within seconds, not once a minute.

Every WATCHDOG_INTERVAL_SECONDS, in every consumer process:
- renew the leases of the snapshot jobs running in this process;
- resume bulk operations whose heartbeat stopped for BULK_STALL_SECONDS (the database decides
  which process resumes one: claim_stalled bumps the heartbeat under a row lock);
- once per interval across all processes (a Redis lock): the sweeper's pass (lost jobs, expired
  leases, re-scans), the recount of unsettled bulk operations, delivery control's (apps
  whose Retry-After has passed are released, open circuits get their probe), and the
  sync_failed sender queued when a notice is due (services/control/sync_failed.py), and the
  alerts' (the failed-count rule checked, the sender queued when a delivery is due:
  services/alerts/sending.py);
- say that this process's worker group has a consumer alive (worker_groups.py);
- every CHECKOUT_SWEEP_SECONDS, this machine's checkouts of repositories that no longer exist
  are removed (services/apps/app_deletion.py; each machine has its own cache).
Huey's periodic tasks run at most once a minute; a stalled operation then waited up to its stall
window plus 60 s, and a lost job the scheduler's ten minutes.

Each step survives the failure of any other and of PostgreSQL or Redis and tries again next
tick; an outage is logged once when it starts, every 30 s while it lasts and once when it ends
(docora_admin/outage_log.py), any other failure once per tick.

Leases are released only by a process that has reached PostgreSQL for at least a whole lease:
after an outage longer than a lease every lease looks expired, and a job that lived through it
must first get the chance to renew its own (it does on its process's first tick back), or its
link would be given to a second job while the first still delivers.
"""
import logging
import threading
import time

from ... import outage_log, runtime
from ..apps import app_deletion
from ..retries import bulk_runner, outcomes
from ..control import delivery_control, sync_failed
from ..alerts import sending as alert_sending
from ..delivery import leases
from . import job_queue, sweeper

log = logging.getLogger(__name__)

_started = threading.Lock()
_thread = None
_database_since = None  # monotonic time since which this process has reached PostgreSQL
_checkouts_swept_at = None  # monotonic time of this process's last checkout sweep
SWEEP_LOCK_KEY = "docora:watchdog:sweep"


def start():
    """Start this process's watchdog thread (once; later calls do nothing)."""
    global _thread
    with _started:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="docora-watchdog", daemon=True)
            _thread.start()


def _run():
    while True:
        interval = runtime.settings().watchdog_interval_seconds
        started = time.monotonic()
        tick()
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def _step(name, action, needs=()):
    """Run one step; `needs` are the outage_log services it reaches, told when it went
    through. A lost connection goes to that outage's one line, any other error is logged."""
    try:
        result = action()
    except Exception as exc:  # an outage, mostly: next tick tries again
        outage = outage_log.outage_of(exc)
        if outage is not None:
            outage.failed(f"the watchdog's {name}", exc)
        else:
            log.warning("watchdog: %s failed: %s: %s", name, exc.__class__.__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
        return None
    for service in needs:
        service.ok()
    return result


def tick():
    """One round of housekeeping (also called directly by tests)."""
    global _database_since
    settings = runtime.settings()
    if _step("lease renewal", lambda: leases.renew() >= 0, (outage_log.POSTGRES,)) is None:
        _database_since = None
    elif _database_since is None:
        _database_since = time.monotonic()
    may_release_leases = _database_since is not None and (
        time.monotonic() - _database_since >= settings.job_lease_seconds)
    _step("resume of stalled bulk retries",
          lambda: bulk_runner.resume_stalled(settings.bulk_stall_seconds))
    if _step("sweep lock", lambda: _take_sweep_turn(settings.watchdog_interval_seconds),
             (outage_log.REDIS,)):
        _step("sweep", lambda: sweeper.sweep(release_leases=may_release_leases))
        _step("outcome recount", outcomes.settle_all)
        _step("delivery control", delivery_control.tick)
        _step("sync_failed notices", sync_failed.tick)
        _step("alerts", alert_sending.tick)
    _step("checkout sweep", _sweep_checkouts)
    # Until two ticks from now, this process's worker group has a consumer: the other groups'
    # consumers leave its last jobs to it (worker_groups.py).
    # (Not counted as Redis answering: with one group it asks Redis nothing.)
    _step("worker group heartbeat",
          lambda: job_queue.note_group_alive(2 * settings.watchdog_interval_seconds + 1))


def _sweep_checkouts():
    global _checkouts_swept_at
    now = time.monotonic()
    if _checkouts_swept_at is not None and (
            now - _checkouts_swept_at < app_deletion.CHECKOUT_SWEEP_SECONDS):
        return
    _checkouts_swept_at = now
    app_deletion.remove_orphaned_checkouts()


def _take_sweep_turn(interval):
    # Expires a little before the next tick, so one process or another sweeps every interval.
    return bool(runtime.redis_client().set(SWEEP_LOCK_KEY, "1", nx=True,
                                           px=max(500, int(interval * 900))))
