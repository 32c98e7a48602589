"""Huey tasks: thin wrappers over services, primitive arguments only."""
from huey import crontab

from .huey_app import PRIORITY_ADMIN, huey  # the consumer finds tasks through this module
from . import runtime
from .services import retry


@huey.task(priority=PRIORITY_ADMIN)
def run_bulk_retry(operation_id):
    retry.run_bulk_retry(operation_id)


@huey.periodic_task(crontab(minute="*"), priority=PRIORITY_ADMIN)
def resume_stalled_bulk_retries():
    # A running bulk retry beats its heart once per chunk; silence this long means its worker
    # died.
    retry.resume_stalled(runtime.settings().bulk_stall_seconds)


# PLACEHOLDER (lead): the snapshot worker (issue 3) replaces this body with the real job.
@huey.task(priority=0)
def snapshot(app_id, repository_id, operation_id=None):
    raise NotImplementedError("snapshot worker not written yet")
