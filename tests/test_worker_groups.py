"""A queue per worker group (worker_groups.py, issue 28): a repository's snapshot jobs go to its
group's queue; a consumer takes from the shared queue first, then its own group's, then steals
from the others'; the counts, the listing and the sweeper's reading see every queue."""
import struct

import pytest

from docora_admin import config
from docora_admin.worker_groups import GroupedPriorityStorage, group_of
from tests.conftest import TEST_REDIS_URL


@pytest.fixture
def storages(monkeypatch):
    made = {}
    for group in (0, 1):
        monkeypatch.setenv("WORKER_GROUPS", "2")
        monkeypatch.setenv("WORKER_GROUP", str(group))
        made[group] = GroupedPriorityStorage(name="test-groups", url=TEST_REDIS_URL,
                                             blocking=False)
    made[0].flush_queue()
    yield made
    made[0].flush_queue()
    for storage in made.values():
        _close(storage)


def _close(storage):
    """Each storage has a connection pool of its own: closed, not left to the collector."""
    storage.conn.connection_pool.disconnect()


def _repository_in(group):
    return next(f"repo_{n}" for n in range(100) if group_of(f"repo_{n}", 2) == group)


def _push(storage, repository_id, place, body):
    storage.conn.zadd(storage.key_for(repository_id), {struct.pack(">Q", place) + body: 0})


def test_a_consumer_takes_its_groups_jobs_first_and_steals_only_when_it_has_none(storages):
    zero, one = storages[0], storages[1]
    _push(zero, _repository_in(0), 1, b"job of group 0")
    _push(zero, _repository_in(1), 2, b"job of group 1")
    zero.enqueue(b"admin task", priority=100)  # the shared queue: any consumer, first
    assert zero.queue_size() == 3
    assert [item for item in zero.enqueued_items()] == [b"admin task", b"job of group 0",
                                                        b"job of group 1"]
    assert one.dequeue() == b"admin task"
    assert one.dequeue() == b"job of group 1"
    assert one.dequeue() == b"job of group 0"  # its own queue is empty: it steals
    assert one.dequeue() is None and zero.queue_size() == 0


def test_the_blocking_take_follows_the_same_order(storages, monkeypatch):
    one = storages[1]
    one.blocking, one.read_timeout = True, 1
    _push(one, _repository_in(0), 1, b"theirs")
    _push(one, _repository_in(1), 2, b"mine")
    assert (one.dequeue(), one.dequeue()) == (b"mine", b"theirs")
    assert one.dequeue() is None  # after the read timeout


def test_one_group_is_the_one_queue_of_before(monkeypatch):
    monkeypatch.delenv("WORKER_GROUPS", raising=False)
    storage = GroupedPriorityStorage(name="test-groups", url=TEST_REDIS_URL)
    assert storage.key_for("repo_x") == storage.queue_key == "huey.redis.testgroups"
    assert storage.dequeue_keys == [storage.queue_key]
    _close(storage)


def test_worker_group_settings_are_checked_at_start_up():
    assert config.worker_groups({}) == (1, 0)
    assert config.worker_groups({"WORKER_GROUPS": "3", "WORKER_GROUP": "2"}) == (3, 2)
    with pytest.raises(config.ConfigError, match="WORKER_GROUP must be below"):
        config.worker_groups({"WORKER_GROUPS": "2", "WORKER_GROUP": "2"})
    with pytest.raises(config.ConfigError, match="WORKER_GROUPS must be between 1 and 64"):
        config.worker_groups({"WORKER_GROUPS": "0"})


def test_a_snapshot_job_moved_from_the_schedule_goes_to_its_groups_queue(storages, monkeypatch):
    from docora_admin.huey_app import DocoraHuey

    monkeypatch.setenv("WORKER_GROUPS", "2")
    monkeypatch.setenv("WORKER_GROUP", "0")
    fleet_huey = DocoraHuey("test-groups", url=TEST_REDIS_URL, results=False, blocking=False)

    @fleet_huey.task(name="snapshot")
    def snapshot(app_id, repository_id, operation_id, generation):
        pass

    @fleet_huey.task(name="run_bulk_retry")
    def run_bulk_retry(operation_id):
        pass

    repository = _repository_in(1)
    fleet_huey.enqueue(snapshot.s("app_x", repository, None, 0))  # what the scheduler does
    fleet_huey.enqueue(run_bulk_retry.s("bulk_0000000000000000"))
    storage = fleet_huey.storage
    assert storage.conn.zcard(storage.key_for(repository)) == 1
    assert storage.conn.zcard(storage.queue_key) == 1  # everything else: the shared queue
    assert [fleet_huey.dequeue().name for _ in range(2)] == ["run_bulk_retry", "snapshot"]
    _close(storage)
