"""Deleting an app: its row and everything that is only its (links, delivered-file records,
attempt log, delivery control, sync_failed notices), then the repositories no other app
follows any more (their snapshots go with them)."""


def lock_app(conn, app_id):
    """The app's row, locked for the caller's transaction (None when there is none): a second
    deletion of the same app waits, then finds nothing."""
    return conn.execute("SELECT app_id, app_name FROM apps WHERE app_id = %s FOR UPDATE",
                        (app_id,)).fetchone()


def delete_app(conn, app_id):
    """Delete the app and what is only its, in the caller's transaction. Returns
    {links: [(link id, repository_id)], files, attempts}: what went."""
    links = conn.execute("SELECT id, repository_id FROM app_repositories WHERE app_id = %s",
                         (app_id,)).fetchall()
    link_ids = [row["id"] for row in links]
    # The attempt log has no foreign key (a link's history outlives it until pruned); an app
    # that is deleted takes its history with it. Indexed by link.
    attempts = conn.execute("DELETE FROM delivery_attempts WHERE link_id = ANY(%s)",
                            (link_ids,)).rowcount
    files = conn.execute("DELETE FROM app_delivered_files WHERE app_id = %s",
                         (app_id,)).rowcount
    # Links, delivery control and sync_failed notices go by ON DELETE CASCADE.
    conn.execute("DELETE FROM apps WHERE app_id = %s", (app_id,))
    return {"links": [(row["id"], row["repository_id"]) for row in links], "files": files,
            "attempts": attempts}


def delete_orphaned_repositories(conn, repository_ids):
    """Delete those of `repository_ids` that no app follows any more; return their
    repository_ids."""
    rows = conn.execute("""
        DELETE FROM repositories r
        WHERE r.repository_id = ANY(%s)
          AND NOT EXISTS (SELECT FROM app_repositories l WHERE l.repository_id = r.repository_id)
        RETURNING r.repository_id
    """, (list(repository_ids),)).fetchall()
    return [row["repository_id"] for row in rows]


def repository_ids(conn):
    """Every repository's id (the checkout sweep keeps their checkouts)."""
    return [row["repository_id"] for row in
            conn.execute("SELECT repository_id FROM repositories").fetchall()]
