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


def make_pending_links_due(conn):
    """Make the links just inserted pending (the database held no other) due now, as a reset
    does, and return what to queue for them: the same rows as redeliver_links_of."""
    return conn.execute("""
        UPDATE app_repositories
        SET next_attempt_at = now(), retry_cause = coalesce(retry_cause, 'scheduler')
        WHERE status = 'pending_snapshot'
        RETURNING app_id, repository_id, retry_operation_id, job_generation,
                  (extract(epoch FROM now()) * 1000000)::bigint AS stamp
    """).fetchall()


def app_ids_named(conn, names):
    """{app_name: app_id} for the apps with these names."""
    rows = conn.execute("SELECT app_id, app_name FROM apps WHERE app_name = ANY(%s)",
                        (list(names),)).fetchall()
    return {row["app_name"]: row["app_id"] for row in rows}


def redeliver_links_of(conn, app_ids):
    """Make every link of these apps deliver all its files again, as a new scheduler episode:
    forget what the apps were sent, close their circuits, and reset their links (a link being
    delivered right now is left to its job). Returns what to queue: [{app_id, repository_id,
    retry_operation_id, job_generation, stamp}]."""
    conn.execute("DELETE FROM app_delivered_files WHERE app_id = ANY(%s)", (list(app_ids),))
    # A new episode starts healthy: circuits closed, streaks and Retry-After forgotten (a pause
    # is the operator's and stays), or an earlier play's open circuit would hold the links.
    conn.execute("""
        UPDATE app_delivery_control
        SET circuit_opened_at = NULL, probe_at = NULL, probe_failures = 0,
            consecutive_failures = 0, deferred_until = NULL, updated_at = now()
        WHERE app_id = ANY(%s)
    """, (list(app_ids),))
    return conn.execute("""
        UPDATE app_repositories
        SET status = 'pending_snapshot', retry_count = 0, last_error = NULL, updated_at = now(),
            next_attempt_at = now(), job_generation = job_generation + 1,
            retry_cause = 'scheduler', retry_operation_id = NULL
        WHERE app_id = ANY(%s) AND status <> 'scanning'
        RETURNING app_id, repository_id, retry_operation_id, job_generation,
                  (extract(epoch FROM now()) * 1000000)::bigint AS stamp
    """, (list(app_ids),)).fetchall()
