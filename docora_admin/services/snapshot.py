"""The snapshot job: claim a link, fetch and scan its repository, deliver the difference to the
app, record the outcome. What a retry queues."""
import logging
import time

from .. import crypto, db, runtime
from ..repositories import delivered_files, snapshot_links
from . import file_scan, git_fetch, retry
from .delivery import DeliveryError, WebhookClient, file_payloads

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600


class SnapshotError(Exception):
    """A failure to record on the link as last_error."""


def backoff_seconds(attempt, base):
    """Delay before attempt `attempt + 1`: base, 2×base, 4×base, … seconds, at most an hour."""
    return min(base * 2 ** max(0, attempt - 1), MAX_BACKOFF_S)


def run_snapshot(app_id, repository_id, operation_id=None):
    """Sync one link; return its new status, or None when there was nothing to claim."""
    with db.connection() as conn:
        if snapshot_links.claim(conn, app_id, repository_id) is None:
            return None
        context = snapshot_links.delivery_context(conn, app_id, repository_id)
    try:
        sent = _sync(context)
    except (SnapshotError, DeliveryError, git_fetch.GitError, crypto.DecryptionError) as exc:
        return _record_failure(context, str(exc), operation_id)
    except Exception as exc:  # never leave a link in `scanning`
        log.exception("snapshot %s/%s failed unexpectedly", app_id, repository_id)
        return _record_failure(context, f"internal error: {exc.__class__.__name__}",
                               operation_id)
    with db.connection() as conn:
        snapshot_links.mark_synced(conn, app_id, repository_id)
    log.info("snapshot %s/%s synced: %d deletes, %d creates, %d updates", app_id,
             repository_id, *sent)
    if operation_id:
        retry.record_delivery(operation_id, delivered=True)
    return "synced"


def _record_failure(context, error, operation_id):
    settings = runtime.settings()
    with db.connection() as conn:
        status = snapshot_links.mark_attempt_failed(
            conn, context["app_id"], context["repository_id"], git_fetch.scrub(error)[:500],
            settings.max_retry_attempts,
            backoff_seconds(context["retry_count"] + 1, settings.retry_backoff_seconds))
    log.warning("snapshot %s/%s: %s (now %s)", context["app_id"], context["repository_id"],
                git_fetch.scrub(error), status)
    if operation_id:
        retry.record_delivery(operation_id, delivered=False)
    return status


def _sync(context):
    """Fetch, scan, diff and deliver. Returns (deletes, creates, updates) sent."""
    settings = runtime.settings()
    if not context["client_auth_key_encrypted"]:
        raise SnapshotError("app has no client auth key")
    key = crypto.decrypt(settings.encryption_key, context["client_auth_key_encrypted"])
    token = (crypto.decrypt(settings.encryption_key, context["github_token_encrypted"])
             if context["github_token_encrypted"] else None)
    app_id, repository_id = context["app_id"], context["repository_id"]
    with db.connection() as conn:
        already = delivered_files.delivered(conn, app_id, repository_id)

    # The checkout is shared by every app of the repository: read what must be sent while
    # holding the lock, deliver after releasing it.
    with git_fetch.repository_lock(repository_id):
        root, commit_sha = git_fetch.fetch(context["github_url"], repository_id, token)
        files = file_scan.scan(root)
        current = {f.path: f for f in files}
        creates = [(f, file_scan.read_content(root, f.path)) for f in files
                   if f.path not in already]
        updates = [(f, file_scan.read_content(root, f.path)) for f in files
                   if f.path in already and already[f.path] != f.sha]
    deletes = sorted(path for path in already if path not in current)

    client = WebhookClient(context["base_url"], app_id, key, settings.delivery_timeout_s)
    repository = {"repository_id": repository_id, "github_url": git_fetch.scrub(
        context["github_url"]), "owner": context["owner"], "name": context["name"]}
    for path in deletes:
        client.post("delete", {"repository": repository, "commit_sha": commit_sha,
                               "file": {"path": path, "sha": already[path]},
                               "previous_sha": already[path],
                               "timestamp": int(time.time())})
        with db.connection() as conn:
            delivered_files.record_deleted(conn, app_id, repository_id, path)
    for action, batch in (("create", creates), ("update", updates)):
        for scanned, data in batch:
            for payload in file_payloads(repository, commit_sha, scanned.path, scanned.sha, data,
                                         previous_sha=already.get(scanned.path)
                                         if action == "update" else None):
                client.post(action, payload)
            # Recorded as each file is acknowledged, so a later run resends only what is missing.
            with db.connection() as conn:
                delivered_files.record_delivered(conn, app_id, repository_id, scanned.path,
                                                 scanned.sha)
    with db.connection() as conn:
        delivered_files.save_snapshot(conn, repository_id, commit_sha,
                                      [(f.path, f.sha, f.size) for f in files])
    return len(deletes), len(creates), len(updates)


def schedule_due(limit=1000):
    """Queue snapshot jobs for links that are due; free links stuck in `scanning`."""
    from . import job_queue

    rescan = runtime.settings().rescan_interval_minutes
    with db.connection() as conn:
        released = snapshot_links.release_stuck_scans(conn, 30)
        due = snapshot_links.take_due(conn, limit, rescan)
    if released:
        log.warning("released %d links stuck in scanning", len(released))
    if due:
        job_queue.enqueue_snapshots([(r["app_id"], r["repository_id"]) for r in due])
    return len(due)
