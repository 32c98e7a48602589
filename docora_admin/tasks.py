"""Huey tasks: thin wrappers over services, primitive arguments only."""
from huey import crontab

from .huey_app import PRIORITY_ADMIN, PRIORITY_SNAPSHOT, huey  # the consumer finds tasks through this module
from . import runtime
from .services import retry
from .services import snapshot as snapshot_service


@huey.task(priority=PRIORITY_ADMIN)
def run_bulk_retry(operation_id):
    retry.run_bulk_retry(operation_id)


@huey.periodic_task(crontab(minute="*"), priority=PRIORITY_ADMIN)
def resume_stalled_bulk_retries():
    # A running bulk retry beats its heart once per chunk; silence this long means its worker
    # died.
    retry.resume_stalled(runtime.settings().bulk_stall_seconds)


@huey.task(priority=PRIORITY_SNAPSHOT)
def snapshot(app_id, repository_id, operation_id=None):
    snapshot_service.run_snapshot(app_id, repository_id, operation_id)


@huey.periodic_task(crontab(minute="*"), priority=PRIORITY_ADMIN)
def schedule_snapshots():
    snapshot_service.schedule_due()
