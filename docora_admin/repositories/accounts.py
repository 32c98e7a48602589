"""The accounts table: who may log in, with which role, and the epoch their sessions carry."""
import psycopg

_COLUMNS = """id, username, role, password_hash, env_password_hash, from_environment,
    session_epoch, disabled_at, created_at, updated_at"""


class UsernameTaken(Exception):
    """Another account already has this username (in any case)."""


def get_by_username(conn, username, for_update=False):
    lock = " FOR UPDATE" if for_update else ""
    return conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE lower(username) = lower(%s)"
                        f"{lock}", (username,)).fetchone()


def get_by_id(conn, account_id):
    return conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE id = %s",
                        (account_id,)).fetchone()


def list_accounts(conn):
    return conn.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY lower(username)").fetchall()


def insert(conn, username, role, password_hash, from_environment=False, env_password_hash=None):
    """Create an account; UsernameTaken when the name exists. Runs in a savepoint so the caller's
    transaction survives the refusal."""
    try:
        with conn.transaction():
            return conn.execute(f"""
                INSERT INTO accounts (username, role, password_hash, from_environment,
                                      env_password_hash)
                VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}
            """, (username, role, password_hash, from_environment,
                  env_password_hash)).fetchone()
    except psycopg.errors.UniqueViolation:
        raise UsernameTaken() from None


def lock_environment_account(conn):
    """Serialise start-ups that bring the environment's account in step (web processes starting
    together), until the end of the transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('docora_admin.environment_account'))")


def release_environment_flag(conn, except_id=None):
    """The environment now names another account: the previous one becomes an ordinary one."""
    conn.execute("UPDATE accounts SET from_environment = false, updated_at = now() "
                 "WHERE from_environment AND id IS DISTINCT FROM %s", (except_id,))


def update(conn, account_id, *, end_sessions, **fields):
    """Set the given columns (role, password_hash, env_password_hash, from_environment,
    disabled_at); `end_sessions` bumps the session epoch, so every session of the account stops
    working at once. Returns the row as it is now."""
    allowed = {"role", "password_hash", "env_password_hash", "from_environment", "disabled_at"}
    assert set(fields) <= allowed, fields
    sets = [f"{name} = %({name})s" for name in sorted(fields)]
    if end_sessions:
        sets.append("session_epoch = session_epoch + 1")
    sets.append("updated_at = now()")
    return conn.execute(f"UPDATE accounts SET {', '.join(sets)} WHERE id = %(id)s "
                        f"RETURNING {_COLUMNS}", {**fields, "id": account_id}).fetchone()


def upgrade_password_hash(conn, account_id, old_hash, new_hash):
    """Replace a hash verified at login by a stronger one of the same password, unless it
    changed meanwhile. Sessions go on: the password is the same."""
    conn.execute("UPDATE accounts SET password_hash = %s WHERE id = %s AND password_hash = %s",
                 (new_hash, account_id, old_hash))


def count_active_admins(conn):
    return conn.execute("SELECT count(*) AS n FROM accounts WHERE role = 'admin' "
                        "AND disabled_at IS NULL").fetchone()["n"]
