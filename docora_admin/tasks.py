"""Huey tasks: thin wrappers over services, primitive arguments only.

Lost jobs, expired leases, stalled bulk retries and re-scans are not periodic tasks: the consumer's
watchdog thread handles them every few seconds (services/jobs/watchdog.py).
"""
from huey import crontab

from . import task_handles
from .huey_app import PRIORITY_ADMIN, PRIORITY_SNAPSHOT, huey  # the consumer finds tasks through this module
from .services.delivery import attempt_log
from .services.console import delivery_stats
from .services.team import audit
from .services.retries import bulk_runner
from .services.control import sync_failed
from .services.console import failure_causes
from .services.alerts import sending as alert_sending
from .services.delivery import snapshot as snapshot_service


@task_handles.provides("run_bulk_retry")
@huey.task(priority=PRIORITY_ADMIN)
def run_bulk_retry(operation_id):
    bulk_runner.run_bulk_retry(operation_id)


@task_handles.provides("snapshot")
@huey.task(priority=PRIORITY_SNAPSHOT)
def snapshot(app_id, repository_id, operation_id=None, generation=None):
    # operation_id is informational (the queue page shows it); the link's own row says which
    # operation's episode an attempt belongs to.
    snapshot_service.run_snapshot(app_id, repository_id, operation_id, generation)


@task_handles.provides("send_sync_failed_notices")
@huey.task(priority=PRIORITY_ADMIN)
def send_sync_failed_notices():
    # The outbox of a repository whose git circuit opened; also queued by the watchdog for any
    # notice still due.
    sync_failed.send_due()


@task_handles.provides("send_alert_deliveries")
@huey.task(priority=PRIORITY_ADMIN)
def send_alert_deliveries():
    # Alerts due on their channels; also queued by the watchdog for any delivery still due.
    alert_sending.send_due()


@huey.periodic_task(crontab(minute="7"), priority=PRIORITY_ADMIN)
def prune_attempt_log():
    attempt_log.prune()
    attempt_log.prune_details()
    sync_failed.prune()
    alert_sending.prune()


@huey.periodic_task(crontab(minute="17"), priority=PRIORITY_ADMIN)
def prune_delivery_stats():
    # The charts' rollup: minute rows past a day, hour rows past 8 days.
    delivery_stats.prune()


@huey.periodic_task(crontab(minute="37"), priority=PRIORITY_ADMIN)
def prune_audit_trail():
    audit.prune()


@huey.periodic_task(crontab(), priority=PRIORITY_ADMIN)
def compact_failure_causes():
    # Rows added side by side while a writer held a group's row (migration 023).
    failure_causes.compact_summary()
