"""The Redis progress hash of a bulk retry."""
import redis

from docora_admin.services.retries import bulk_progress
from tests.conftest import TEST_REDIS_URL


def test_operation_ids_have_the_documented_shape():
    ids = {bulk_progress.generate_operation_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(bulk_progress.is_valid_operation_id(i) for i in ids)
    assert not bulk_progress.is_valid_operation_id("bulk_XYZ")


def test_create_increment_cancel_and_read(app):
    op = bulk_progress.generate_operation_id()
    bulk_progress.create_progress(op, 10)
    raw = redis.Redis.from_url(TEST_REDIS_URL)
    assert 3590 <= raw.ttl(f"docora:bulk:{op}") <= 3600
    assert bulk_progress.increment_progress(op, succeeded=3, failed=1) is False
    bulk_progress.increment_progress(op, skipped=2)
    progress = bulk_progress.get_progress(op)
    assert (progress["total"], progress["completed"], progress["succeeded"], progress["failed"],
            progress["skipped"], progress["cancelled"]) == (10, 6, 3, 1, 2, False)
    assert bulk_progress.is_cancelled(op) is False
    assert bulk_progress.cancel_progress(op) is True
    assert bulk_progress.is_cancelled(op) is True and bulk_progress.get_progress(op)["cancelled"]
    # The task hears of a cancel from its own counter update.
    assert bulk_progress.increment_progress(op, succeeded=1) is True
    bulk_progress.mark_failed(op, "queue unavailable")
    assert bulk_progress.get_progress(op)["status"] == "failed"
    assert bulk_progress.get_progress(op)["error"] == "queue unavailable"


def test_unknown_ids_create_no_key(app):
    op = bulk_progress.generate_operation_id()
    assert bulk_progress.get_progress(op) is None
    assert bulk_progress.cancel_progress(op) is False
    assert bulk_progress.increment_progress(op, succeeded=1) is False
    bulk_progress.mark_failed(op, "x")
    assert redis.Redis.from_url(TEST_REDIS_URL).exists(f"docora:bulk:{op}") == 0
