"""Least privilege in PostgreSQL (issue 24, M3): `migrate` runs as the tables' owner and makes a
role for the app and the worker that owns nothing. That role reads and writes the working
tables, but on the audit trail it may only SELECT and INSERT (no UPDATE, DELETE, TRUNCATE,
DDL, trigger switching), and it prunes only through audit_prune() (migration 019), which keeps
the retention `migrate` stored. Point DATABASE_URL at that role and DATABASE_OWNER_URL at the
owner (scripts/run does both); with one URL for both, everything runs as the owner, as before.
"""
import re

from psycopg import sql

DEFAULT_ROLE = "docora_admin_app"
ROLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Read only for the app: the trail's retention and what has been migrated.
READ_ONLY = ("audit_retention", "schema_migrations")


def ensure_app_role(conn, role, password, retention_days):
    """Create or update the app's role and its grants, and store the audit retention; `conn` is
    the owner's (autocommit). Returns the role."""
    if not ROLE_RE.fullmatch(role):
        raise ValueError(f"DATABASE_APP_ROLE {role!r}: lower-case letters, digits and _ only")
    name = sql.Identifier(role)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT").format(name))
    if password:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(name,
                                                                        sql.Literal(password)))
    database = conn.execute("SELECT current_database()").fetchone()[0]
    for statement in (
            "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            # nextval needs USAGE; UPDATE (setval) would let it move an id sequence back.
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            "REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM {role}",
            "GRANT EXECUTE ON FUNCTION audit_prune(integer) TO {role}"):
        conn.execute(sql.SQL(statement).format(db=sql.Identifier(database), role=name))
    for table in READ_ONLY:
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), name))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table), name))
    store_retention(conn, retention_days)
    return role


def store_retention(conn, retention_days):
    """The audit retention alone (tests, and a database whose app runs as the owner)."""
    conn.execute("""
        INSERT INTO audit_retention (one, days) VALUES (true, %s)
        ON CONFLICT (one) DO UPDATE SET days = EXCLUDED.days
    """, (retention_days,))
