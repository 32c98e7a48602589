"""Two worker machines on one PostgreSQL and one Redis (issue 28), simulated: two huey_consumer
processes, each with a git cache of its own (what makes a machine here: its checkouts and
their locks), one of them with its wall clock a minute ahead (libfaketime), against a remote
slowed by git's uploadpack.packObjectsHook, with pushes between and during the retries and a
`kill -9` of one machine. Whatever happens:
- a link queued after a push gets the push, whichever machine looked at the remote last and
  whatever its clock says (looks are stamped and judged by PostgreSQL's clock);
- a machine's checkout lock is its own (a flock of a file in its cache): the dead machine's
  lock is gone with it, and no lock lives in Redis for another machine to wait on;
- every link is delivered, each file once (but for what the dead machine had in flight), every
  signature good, the dead machine's queue (a queue per worker group) emptied by the other.
Real processes, a PostgreSQL and a Redis of the test's own (tests/private_services.py)."""
import collections
import fcntl
import hashlib
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from tests.private_services import private_postgres, private_redis  # noqa: F401
from tests.processes import wait_for
from tests.slow_remote import slow_remote
from tests.test_fault_injection import FILES, Rig

pytestmark = pytest.mark.no_services  # the shared services are not touched

# Debian's libfaketime (the faketime package), whatever the architecture.
FAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))),
                Path("/usr/lib/faketime/libfaketimeMT.so.1"))
SETTLE_TIMEOUT_S = 120


def _clock_ahead(seconds):
    """The environment that sets a process's clocks `seconds` ahead (its monotonic clock too,
    by the same amount: intervals stay true, and libfaketime's sleeps only work so).
    scripts/test and .ci/run install faketime."""
    assert FAKETIME.exists(), "libfaketime is missing: apt-get install faketime"
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": f"+{seconds}s"}


def _machine(rig, name, cache=None, **env):
    """A consumer standing for a machine: its own git cache (`cache`: that of an earlier one
    restarted)."""
    cache = cache or rig.tmp_path / f"{name}-git-cache"
    return rig.consumer(name, DOCORA_GIT_CACHE=str(cache), **env), cache


def _fail_everything(rig):
    rig.query("UPDATE app_repositories SET status = 'failed', retry_count = 5, "
              "last_error = 'POST /create → HTTP 500', updated_at = now() RETURNING id")


def _retry_all_and_wait(rig):
    operation_id = rig.start_retry_all()
    wait_for(lambda: rig.operation(operation_id)["settled_at"] is not None
             and rig.statuses() == {"synced": rig.links}, SETTLE_TIMEOUT_S, interval=0.2,
             message=f"all {rig.links} links synced (now {rig.statuses()})")
    op = rig.operation(operation_id)
    assert (op["delivered"], op["delivery_failed"], op["gone"]) == (rig.links, 0, 0)
    return operation_id


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _readme_of_every_link(rig):
    return collections.Counter(row["file_sha"] for row in rig.query(
        "SELECT file_sha FROM app_delivered_files WHERE file_path = 'README.md'"))


@pytest.fixture
def fleet(tmp_path, private_postgres, private_redis):  # noqa: F811
    made = Rig(tmp_path, private_postgres, private_redis, apps=2, repositories=6,
               GIT_SHARE_SECONDS="120", BULK_CHUNK_DELAY_MS="0")
    yield made
    made.close()


def test_a_machine_whose_clock_is_ahead_never_makes_a_stale_look_pass_for_fresh(fleet):
    # B delivers everything once: its checkouts hold the first commit.
    b, b_cache = _machine(fleet, "machine-b")
    _retry_all_and_wait(fleet)
    b.stop()
    # A, a minute ahead, is the last to look at every repository (it clones each, too).
    a, _ = _machine(fleet, "machine-a", **_clock_ahead(60))
    _fail_everything(fleet)
    _retry_all_and_wait(fleet)
    a.stop()
    # A push, then a retry that B alone runs: B must not take A's look (made before the push,
    # stamped a minute "later" by A's wall clock) for one made after the retry was pressed,
    # which would have B deliver the commit its checkout already holds.
    fleet.repo.commit({"README.md": "pushed after the last look\n"})
    _fail_everything(fleet)
    _machine(fleet, "machine-b-again", cache=b_cache)
    _retry_all_and_wait(fleet)
    assert _readme_of_every_link(fleet) == {_sha("pushed after the last look\n"): fleet.links}
    assert fleet.receiver.bad_signatures == 0


def test_a_killed_machine_holds_no_lock_and_the_other_delivers_everything_once(
        tmp_path, private_postgres, private_redis):  # noqa: F811
    # A queue per machine, chosen by repository (WORKER_GROUPS): once A is dead (its watchdog
    # no longer says its group is alive, two ticks later), B steals what waits in A's queue.
    rig = Rig(tmp_path, private_postgres, private_redis, apps=3, repositories=8,
              BULK_CHUNK_DELAY_MS="0", JOB_LEASE_SECONDS="5", WORKER_GROUPS="2")
    try:
        slow = slow_remote(tmp_path, 1.0)
        a, a_cache = _machine(rig, "machine-a", WORKER_GROUP="0", **slow, **_clock_ahead(60))
        _machine(rig, "machine-b", WORKER_GROUP="1", **slow)
        operation_id = rig.start_retry_all()
        held = wait_for(lambda: _lock_held_in(a_cache), 60, interval=0.01,
                        message="machine A fetching under its checkout's lock")
        a.stop(signal.SIGKILL)  # mid-fetch, its lock held
        killed_at = time.monotonic()
        # The kernel freed A's lock with A: nothing for anyone to wait out.
        assert not _lock_busy(held)
        # Nothing of a checkout lock lives in Redis, where another machine could wait on it.
        assert not redis.Redis.from_url(rig.redis.url).keys("docora:git-lock:*")
        rig.repo.commit({"README.md": "pushed during the run\n"})
        wait_for(lambda: rig.operation(operation_id)["settled_at"] is not None
                 and rig.statuses() == {"synced": rig.links}, SETTLE_TIMEOUT_S, interval=0.2,
                 message=f"all {rig.links} links synced (now {rig.statuses()})")
        print(f"\nmachine A killed mid-fetch: B delivered all {rig.links} links and the "
              f"operation settled {time.monotonic() - killed_at:.1f} s later")
        op = rig.operation(operation_id)
        assert (op["delivered"], op["delivery_failed"], op["gone"]) == (rig.links, 0, 0)
        # Queued before the push: each link has the commit it was queued at, or the push.
        readmes = _readme_of_every_link(rig)
        assert sum(readmes.values()) == rig.links and set(readmes) <= {
            _sha("README.md\n"), _sha("pushed during the run\n")}, readmes
        # Each file once, but what A had in flight when it died (at most one a worker).
        sent = collections.Counter((app, repo, path, sha)
                                   for app, repo, _, path, sha in rig.receiver.deliveries)
        assert sum(n - 1 for n in sent.values()) <= 4, {k: n for k, n in sent.items() if n > 1}
        assert {(app, repo, path) for app, repo, path, _ in sent} >= {
            (f"app_fault_{a}", f"repo_fault_{r}", path) for a in range(1, rig.apps + 1)
            for r in range(1, rig.repositories + 1) for path in FILES}
        assert rig.receiver.bad_signatures == 0
    finally:
        rig.close()


def _lock_busy(path):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _lock_held_in(cache):
    """A checkout lock file of this cache that some process holds now, else None."""
    for path in cache.glob("*.lock") if cache.exists() else ():
        if _lock_busy(path):
            return path
    return None
