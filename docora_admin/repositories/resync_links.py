"""Re-syncing one link: forget what the app received and make the link due for a full
snapshot, in one statement (a whole app's re-sync is a bulk operation: retry_links.reset_chunk)."""
from .retry_links import _RESET, STAMP


def reset_link(conn, app_id, repository_id):
    """Reset a link that no job is delivering (any other status) for a re-sync episode and clear
    its delivered-file records. Returns {job_generation, stamp, files_cleared}, or None when the
    link is missing or being delivered."""
    return conn.execute(f"""
        WITH reset AS (
            UPDATE app_repositories
            SET {_RESET}, retry_cause = 'resync', retry_operation_id = NULL
            WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
              AND status <> 'scanning'
            RETURNING app_id, repository_id, job_generation
        ), cleared AS (
            DELETE FROM app_delivered_files f USING reset
            WHERE f.app_id = reset.app_id AND f.repository_id = reset.repository_id
            RETURNING 1
        )
        SELECT job_generation, {STAMP} AS stamp,
               (SELECT count(*) FROM cleared) AS files_cleared
        FROM reset
    """, {"app_id": app_id, "repository_id": repository_id}).fetchone()


def app_counts(conn, app_id):
    """{links, files}: an app's links and the files it was recorded to have received."""
    return conn.execute("""
        SELECT (SELECT count(*) FROM app_repositories WHERE app_id = %(a)s) AS links,
               (SELECT count(*) FROM app_delivered_files WHERE app_id = %(a)s) AS files
    """, {"a": app_id}).fetchone()
