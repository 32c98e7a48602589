"""Deleting an app (DELETE /admin/api/apps/<app_id>, the app page's confirm dialog).

One transaction: the app's active bulk operations end as cancelled ("The app was deleted"),
the app goes with its links, delivered-file records, attempt log, delivery control and
sync_failed notices, then the repositories no other app follows, and the deletion is audited.
After the commit: the ended operations' progress hashes, the app's unwritten acknowledgements,
and this machine's checkouts of the orphaned repositories. A job delivering one of its links at
that moment loses its claim (snapshot_delivery checks it between files) and stops; jobs still
queued for its links find no link and end as no-ops.

Other machines' checkouts of an orphaned repository (and this one's, should the web process die
right after the commit) go with the next checkout sweep of that machine's consumers
(remove_orphaned_checkouts, from the watchdog every CHECKOUT_SWEEP_SECONDS).
"""
import logging

from ... import db
from ...errors import ApiError
from ...input_values import valid_id
from ...repositories import app_deletion
from ...repositories import bulk_operations as ops_repo
from ..delivery import acknowledgements, git_fetch
from ..team import audit
from ..retries import bulk_progress

log = logging.getLogger(__name__)

CHECKOUT_SWEEP_SECONDS = 600

OPERATION_ENDED = "The app was deleted"


def delete_app(app_id, confirm_name=None):
    """Delete the app; return the original's {deleted, repositories_unlinked,
    orphaned_repositories_cleaned} and ours: app_name, files_forgotten, attempts_deleted,
    operations_ended [ids], checkouts_removed. `confirm_name` (the console's dialog): the
    app's name as the operator typed it, which must match. ApiError 404 "App not found", 400
    when the typed name does not match (nothing changes)."""
    if not valid_id(app_id):
        raise ApiError(404, "App not found")
    with db.connection() as conn:
        app = app_deletion.lock_app(conn, app_id)
        if app is None:
            raise ApiError(404, "App not found")
        if confirm_name is not None and confirm_name.strip() != app["app_name"].strip():
            raise ApiError(400, "Type the app's name exactly to delete it")
        ended = ops_repo.end_for_deleted_app(conn, app_id, OPERATION_ENDED)
        gone = app_deletion.delete_app(conn, app_id)
        repository_ids = [repository_id for _, repository_id in gone["links"]]
        orphaned = app_deletion.delete_orphaned_repositories(conn, repository_ids)
        result = {"deleted": True, "repositories_unlinked": len(gone["links"]),
                  "orphaned_repositories_cleaned": len(orphaned),
                  "files_forgotten": gone["files"], "attempts_deleted": gone["attempts"],
                  "operations_ended": [op["id"] for op in ended]}
        audit.record(conn, "app.delete", target=app_id,
                     details={"app_name": app["app_name"], **result,
                              "orphaned_repositories": orphaned})
    for op in ended:
        bulk_progress.cancel_progress(op["id"])
        bulk_progress.write_from_record(op)
    acknowledgements.drop_journals([(app_id, repository_id) for repository_id in repository_ids])
    removed = sum(git_fetch.remove_checkout(repository_id) for repository_id in orphaned)
    log.info("app %s deleted: %d links unlinked, %d orphaned repositories removed (%d "
             "checkouts here), %d operations ended", app_id, result["repositories_unlinked"],
             len(orphaned), removed, len(ended))
    return {**result, "app_name": app["app_name"], "checkouts_removed": removed}


def remove_orphaned_checkouts():
    """Remove this machine's checkouts of repositories that no longer exist; return how many.
    The cache is listed before the repositories are read, so a checkout cloned meanwhile
    belongs to a repository that is read."""
    names = git_fetch.checkout_names()
    if not names:
        return 0
    with db.connection() as conn:
        known = {git_fetch.checkout_name(r) for r in app_deletion.repository_ids(conn)}
    orphaned = names - known
    for name in orphaned:
        git_fetch.remove_checkout_named(name)
    if orphaned:
        log.info("removed %d checkouts of repositories that no longer exist", len(orphaned))
    return len(orphaned)
