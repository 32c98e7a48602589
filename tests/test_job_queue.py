"""The pipelined snapshot enqueue writes exactly what huey.enqueue would."""
import itertools
import random
import re

import pytest

from docora_admin.huey_app import huey
from docora_admin.services.jobs import job_queue
from docora_admin.tasks import run_bulk_retry, snapshot


pytestmark = pytest.mark.usefixtures("empty_queue")


STAMP = 1_800_000_000_000_000  # a queue place in µs


def test_pipelined_jobs_dequeue_as_snapshot_tasks_in_order():
    jobs = [(f"app_{i}", f"repo_{i}", "bulk_0123456789abcdef", i) for i in range(2500)]
    ids = job_queue.push_snapshot_jobs(jobs, STAMP)  # more than one batch
    assert len(ids) == len(set(ids)) == 2500
    assert huey.pending_count() == 2500
    first, second = huey.dequeue(), huey.dequeue()
    assert first.name == "snapshot"
    assert first.args == ("app_0", "repo_0", "bulk_0123456789abcdef", 0)
    assert second.args[:2] == ("app_1", "repo_1")
    assert (first.id, second.id) == tuple(ids[:2])


def test_pipelined_job_is_hueys_own_message_but_for_its_id():
    job_queue.push_snapshot_jobs([("app_a", "repo_a", "bulk_0123456789abcdef", 3)], STAMP)
    pushed = huey.dequeue()
    expected = snapshot.s("app_a", "repo_a", "bulk_0123456789abcdef", 3)
    for attribute in ("name", "args", "kwargs", "eta", "retries", "retry_delay", "priority",
                      "expires", "timeout", "on_complete", "on_error"):
        assert getattr(pushed, attribute) == getattr(expected, attribute), attribute
    assert re.fullmatch(r"[0-9a-f]{32}", pushed.id)


def test_admin_tasks_run_before_queued_snapshot_jobs():
    job_queue.push_snapshot_jobs([("app_a", "repo_a", None, 1), ("app_b", "repo_b", None, 1)],
                                 STAMP)
    run_bulk_retry("bulk_0123456789abcdef")  # queued last, higher priority
    assert huey.dequeue().name == "run_bulk_retry"
    assert huey.dequeue().name == "snapshot"


def test_oldest_waiting_stamp_is_the_queue_place_of_the_next_snapshot_job():
    assert job_queue.oldest_waiting_stamp() is None
    job_queue.push_snapshot_jobs([("app_b", "repo_b", None, 1)], STAMP + 50)
    job_queue.push_snapshot_jobs([("app_a", "repo_a", None, 1)], STAMP)
    run_bulk_retry("bulk_0123456789abcdef")  # admin tasks do not count
    assert job_queue.oldest_waiting_stamp() == STAMP
    assert huey.dequeue().name == "run_bulk_retry"
    assert huey.dequeue().args[0] == "app_a"  # the oldest place runs first
    assert job_queue.oldest_waiting_stamp() == STAMP + 50
    huey.dequeue()
    assert job_queue.oldest_waiting_stamp() is None


def test_a_backoff_job_is_scheduled_not_queued():
    from datetime import datetime, timedelta, timezone

    job_queue.schedule_snapshot("app_a", "repo_a", None, 4,
                                datetime.now(timezone.utc) + timedelta(minutes=5))
    assert huey.pending_count() == 0 and huey.scheduled_count() == 1
    [task] = huey.scheduled()
    assert task.args == ("app_a", "repo_a", None, 4)


def test_a_chunk_is_queued_with_its_apps_taking_turns():
    # No repository shared: every job is its repository's first, and the order is the apps'
    # round robin, each app's jobs in their order.
    jobs = [("app_a", f"repo_a{n}", None, 1) for n in range(3)] + \
        [("app_b", "repo_b0", None, 1)] + [("app_c", f"repo_c{n}", None, 1) for n in range(2)]
    assert [(a, r) for a, r, _, _ in job_queue.apps_in_turn(jobs)] == [
        ("app_a", "repo_a0"), ("app_b", "repo_b0"), ("app_c", "repo_c0"),
        ("app_a", "repo_a1"), ("app_c", "repo_c1"), ("app_a", "repo_a2")]


def test_a_repositorys_jobs_are_queued_together_its_first_one_well_ahead():
    # 4 apps on the same 40 repositories, failed in a shuffled order (as a retry-all's chunk
    # comes): each repository's other jobs come in a row, its first one about LEAD places
    # before them (for the fetch to be done when they run), and the apps still take turns.
    apps, repositories = 4, 40
    jobs = [(f"app_{a}", f"repo_{r:02d}", None, 1) for a in range(apps)
            for r in range(repositories)]
    random.Random(3).shuffle(jobs)
    queued = job_queue.apps_in_turn(jobs)
    assert sorted(queued) == sorted(jobs)
    places = {}
    for place, (_, repository_id, _, _) in enumerate(queued):
        places.setdefault(repository_id, []).append(place)
    for at in places.values():
        first, rest = at[0], at[1:]
        assert rest == list(range(rest[0], rest[0] + apps - 1))
        assert first < rest[0]
        if first >= job_queue.LEAD:
            assert rest[0] - first >= job_queue.LEAD - 2 * apps
    longest_run = max(len(list(run)) for _, run in itertools.groupby(a for a, *_ in queued))
    assert longest_run <= 3


def test_tasks_are_never_revoked():
    job = snapshot.s("app_a", "repo_a", None, 1)
    with pytest.raises(NotImplementedError):
        huey.revoke(job)
    with pytest.raises(NotImplementedError):
        huey.revoke_by_id(job.id)
    assert not huey.is_revoked(job)
