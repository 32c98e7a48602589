"""What each app has received of each repository, and the repository's latest snapshot."""


def delivered(conn, app_id, repository_id):
    """{file_path: file_sha} the app has acknowledged."""
    rows = conn.execute(
        "SELECT file_path, file_sha FROM app_delivered_files "
        "WHERE app_id = %s AND repository_id = %s", (app_id, repository_id)).fetchall()
    return {row["file_path"]: row["file_sha"] for row in rows}


# Files the app acknowledged, as statements (or CTEs) taking %(app_id)s, %(repository_id)s,
# %(paths)s and %(shas)s (sent, parallel arrays) and %(deleted)s (paths): one round trip for a
# batch of any size, and part of the statement that ends a delivered attempt
# (snapshot_links.mark_synced).
ACKNOWLEDGED = """
    INSERT INTO app_delivered_files (app_id, repository_id, file_path, file_sha)
    SELECT %(app_id)s::varchar, %(repository_id)s::varchar, path, sha
    FROM unnest(%(paths)s::text[], %(shas)s::text[]) AS f (path, sha)
    -- Not for a link that is gone (its app was deleted while a job delivered to it).
    WHERE EXISTS (SELECT FROM app_repositories l
                  WHERE l.app_id = %(app_id)s AND l.repository_id = %(repository_id)s)
    ON CONFLICT (app_id, repository_id, file_path)
    DO UPDATE SET file_sha = EXCLUDED.file_sha, delivered_at = now()
"""
UNACKNOWLEDGED = """
    DELETE FROM app_delivered_files WHERE app_id = %(app_id)s
    AND repository_id = %(repository_id)s AND file_path = ANY(%(deleted)s::text[])
"""


def acknowledged_params(app_id, repository_id, sent, deleted):
    """The parameters of ACKNOWLEDGED and UNACKNOWLEDGED for `sent` [(path, sha)] and `deleted`
    [path]."""
    return {"app_id": app_id, "repository_id": repository_id,
            "paths": [path for path, _ in sent], "shas": [sha for _, sha in sent],
            "deleted": list(deleted)}


def record_many(conn, app_id, repository_id, sent, deleted):
    """Files the app acknowledged: `sent` [(path, sha)] and `deleted` [path], in the caller's
    transaction."""
    params = acknowledged_params(app_id, repository_id, sent, deleted)
    if sent:
        conn.execute(ACKNOWLEDGED, params)
    if deleted:
        conn.execute(UNACKNOWLEDGED, params)


def save_snapshot(conn, repository_id, commit_sha, files):
    """Replace the repository's snapshot with `files` [(path, sha, size)] at `commit_sha`,
    unless it already is that commit's (every app's job of a commit finds the same files: the
    first one writes them). Returns whether it wrote."""
    written = conn.execute("""
        INSERT INTO repository_snapshots (repository_id, commit_sha, scanned_at)
        -- Not for a repository that is gone (its last app was deleted meanwhile).
        SELECT repository_id, %s, now() FROM repositories WHERE repository_id = %s
        ON CONFLICT (repository_id) DO UPDATE
        SET commit_sha = EXCLUDED.commit_sha, scanned_at = now()
        WHERE repository_snapshots.commit_sha IS DISTINCT FROM EXCLUDED.commit_sha
        RETURNING id
    """, (commit_sha, repository_id)).fetchone()
    if written is None:
        return False
    snapshot_id = written["id"]
    conn.execute("DELETE FROM snapshot_files WHERE snapshot_id = %s", (snapshot_id,))
    with conn.cursor().copy(
            "COPY snapshot_files (snapshot_id, file_path, file_sha, file_size) FROM STDIN") as copy:
        for path, sha, size in files:
            copy.write_row((snapshot_id, path, sha, size))
    return True
