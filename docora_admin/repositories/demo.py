"""Bulk inserts for demo and benchmark data."""


def has_any_app(conn):
    return conn.execute("SELECT EXISTS (SELECT 1 FROM apps) AS x").fetchone()["x"]


def insert_all(conn, apps, repos, links):
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO apps (app_id, app_name, base_url, token_hash, email, "
            "client_auth_key_encrypted) VALUES (%(app_id)s, %(app_name)s, %(base_url)s, "
            "%(token_hash)s, %(email)s, %(client_auth_key_encrypted)s)", apps)
        cur.executemany(
            "INSERT INTO repositories (repository_id, github_url, owner, name, is_private) "
            "VALUES (%(repository_id)s, %(github_url)s, %(owner)s, %(name)s, %(is_private)s)",
            repos)
        cur.executemany(
            "INSERT INTO app_repositories (app_id, repository_id, status, last_error, "
            "retry_count, last_scanned_at, updated_at) VALUES (%(app_id)s, %(repository_id)s, "
            "%(status)s, %(last_error)s, %(retry_count)s, %(last_scanned_at)s, %(updated_at)s)",
            links)
