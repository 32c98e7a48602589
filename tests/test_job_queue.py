"""The pipelined snapshot enqueue writes exactly what huey.enqueue would."""
import re

import pytest

from docora_admin.huey_app import huey
from docora_admin.services import job_queue
from docora_admin.tasks import run_bulk_retry, snapshot


pytestmark = pytest.mark.usefixtures("empty_queue")


def test_pipelined_jobs_dequeue_as_snapshot_tasks_in_order():
    links = [(f"app_{i}", f"repo_{i}") for i in range(2500)]  # more than one batch
    assert job_queue.enqueue_snapshots(links, "bulk_0123456789abcdef") == 2500
    assert huey.pending_count() == 2500
    first, second = huey.dequeue(), huey.dequeue()
    assert first.name == "snapshot" and first.args == ("app_0", "repo_0", "bulk_0123456789abcdef")
    assert second.args[:2] == ("app_1", "repo_1")
    assert first.id != second.id


def test_pipelined_job_is_hueys_own_message_but_for_its_id():
    job_queue.enqueue_snapshots([("app_a", "repo_a")], "bulk_0123456789abcdef")
    pushed = huey.dequeue()
    expected = snapshot.s("app_a", "repo_a", "bulk_0123456789abcdef")
    for attribute in ("name", "args", "kwargs", "eta", "retries", "retry_delay", "priority",
                      "expires", "timeout", "on_complete", "on_error"):
        assert getattr(pushed, attribute) == getattr(expected, attribute), attribute
    assert re.fullmatch(r"[0-9a-f]{32}", pushed.id)


def test_admin_tasks_run_before_queued_snapshot_jobs():
    job_queue.enqueue_snapshots([("app_a", "repo_a"), ("app_b", "repo_b")])
    run_bulk_retry("bulk_0123456789abcdef")  # queued last, higher priority
    assert huey.dequeue().name == "run_bulk_retry"
    assert huey.dequeue().name == "snapshot"


def test_single_enqueue_returns_the_job_id():
    job_id = job_queue.queue_snapshot("app_a", "repo_a")
    task = huey.dequeue()
    assert task.id == job_id and task.args == ("app_a", "repo_a", None)
