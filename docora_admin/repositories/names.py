"""Display names for ids shown on a page: an app's name, a repository's owner/name."""


def app_names(conn, app_ids):
    """{app_id: app_name} for the apps among `app_ids` that exist."""
    if not app_ids:
        return {}
    rows = conn.execute("SELECT app_id, app_name FROM apps WHERE app_id = ANY(%s)",
                        (list(app_ids),)).fetchall()
    return {row["app_id"]: row["app_name"] for row in rows}


def repository_names(conn, repository_ids):
    """{repository_id: "owner/name"} for the repositories among `repository_ids` that exist."""
    if not repository_ids:
        return {}
    rows = conn.execute("SELECT repository_id, owner || '/' || name AS full_name "
                        "FROM repositories WHERE repository_id = ANY(%s)",
                        (list(repository_ids),)).fetchall()
    return {row["repository_id"]: row["full_name"] for row in rows}
