"""A queue per worker group (worker_groups.py, issue 28): a repository's snapshot jobs go to its
group's queue; a consumer takes from the shared queue first, then its own group's, then steals
from the others'; the counts, the listing and the sweeper's reading see every queue."""
import struct

import pytest

from docora_admin import config
from docora_admin.worker_groups import GroupedPriorityStorage
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
    made[0].conn.delete(made[0].assignment_key)
    yield made
    made[0].flush_queue()
    made[0].conn.delete(made[0].assignment_key)
    for storage in made.values():
        _close(storage)


def _close(storage):
    """Each storage has a connection pool of its own: closed, not left to the collector."""
    storage.conn.connection_pool.disconnect()


def _repository_in(group):
    """repo_group0 is the first repository seen (group 0 then has one, group 1 none), and so on:
    the storages' fixture starts from no assignment."""
    return f"repo_group{group}"


@pytest.fixture(autouse=True)
def _assigned(storages):
    assert storages[0].groups_of([_repository_in(0), _repository_in(1)]) == {
        "repo_group0": 0, "repo_group1": 1}


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


def test_repositories_are_shared_out_evenly_and_keep_their_group(storages):
    zero, one = storages[0], storages[1]
    # Ids whose crc32 mod 2 is 0 for 12 of these 20 (the split that the hash gave the bench).
    repositories = [f"repo_bench_{n}" for n in range(20)]
    groups = one.groups_of(repositories + repositories[:3])  # repeats: one answer each
    assert list(groups) == repositories
    assert sorted(groups.values()).count(0) == 10 and sorted(groups.values()).count(1) == 10
    # Every process routes alike, whichever asks, and a repository keeps its group.
    assert zero.groups_of(list(reversed(repositories))) == groups
    assert zero.key_for("repo_bench_7") == zero.group_keys[groups["repo_bench_7"]]
    assert zero.keys_for([]) == {}


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


def _look_again(storage):
    storage._stealable_until = 0.0  # the steal look is kept a second per process


def test_a_live_groups_last_jobs_are_left_to_it_a_backlog_or_a_dead_group_is_stolen(
        storages, monkeypatch):
    from docora_admin import worker_groups

    zero, one = storages[0], storages[1]
    monkeypatch.setattr(worker_groups, "STEAL_BACKLOG", 3)
    zero.note_alive(30)  # group 0's watchdog: alive
    for place in (1, 2):
        _push(zero, _repository_in(0), place, b"group 0's job %d" % place)
    assert one.dequeue() is None  # two waiting: group 0's own machine has them in hand
    _push(zero, _repository_in(0), 3, b"group 0's job 3")
    _look_again(one)
    assert one.dequeue() == b"group 0's job 1"  # a backlog of three: it helps
    _look_again(one)
    assert one.dequeue() is None  # two again: left to group 0
    zero.conn.delete(zero.alive_key)  # its watchdog stopped: the machine died
    _look_again(one)
    assert (one.dequeue(), one.dequeue()) == (b"group 0's job 2", b"group 0's job 3")
    assert zero.dequeue() is None
    zero.conn.delete(zero.alive_key)


def test_a_job_given_back_waits_behind_the_others_and_is_not_other_work(storages, monkeypatch):
    import datetime

    from docora_admin.huey_app import huey
    from docora_admin.services.jobs import job_queue

    zero = storages[0]
    monkeypatch.setattr(huey, "storage", zero)
    monkeypatch.setattr(huey, "_immediate", False)
    due = datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc)
    job_queue.push_given_back("app_x", _repository_in(0), None, 3, due)
    assert not job_queue.other_work_waiting()  # only a given-back job: waiting is the work
    assert job_queue.oldest_waiting_stamp() == int(due.timestamp() * 1e6)  # the sweeper sees it
    _push(zero, _repository_in(0), int(due.timestamp() * 1e6) + 5, b"a job not given back")
    assert job_queue.other_work_waiting()
    assert zero.dequeue() == b"a job not given back"  # placed later, taken first
    given_back = huey.deserialize_task(zero.dequeue())
    assert (given_back.name, given_back.args) == ("snapshot", ("app_x", "repo_group0", None, 3))
