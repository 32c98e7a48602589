"""PostgreSQL access: one pool per process, a connection() context manager, migrations."""
import contextlib
import time
from importlib import resources

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from . import redact

_pool = None

# A pool wait longer than this means the database is down or saturated: answer 503 quickly.
POOL_TIMEOUT_S = 1.5
# A connection back in the pool for longer than this is checked (a round trip) before it is lent
# again. One lent again sooner is not: a snapshot job borrows one 5 times, and a check per borrow
# was a sixth of its PostgreSQL round trips. A server that died within that second fails the
# work at hand once (503, or a job waits it out), and the broken connection is dropped.
CHECK_IDLE_S = 1.0


# psycopg_pool tries a lost server again with an exponential back-off (1, 2, 4, 8 s … between
# attempts, up to reconnect_timeout): after an outage of ten seconds the web kept answering 503
# for up to ~5-8 s after PostgreSQL was back. A fixed half second instead, so requests recover
# within a second (an attempt against a server that is down is a refused connect, or at most
# connect_timeout). These are the pool's class attributes (psycopg_pool 3.2-3.3);
# tests/test_outages.py measures the recovery, so a release that renames them shows there.
AttemptWithBackoff.INITIAL_DELAY = 0.5
AttemptWithBackoff.DELAY_BACKOFF = 1.0


class DatabaseUnavailable(Exception):
    """PostgreSQL did not answer in time."""


def open_pool(database_url, max_size=10):
    """Open (or replace) this process's pool. Connections are opened lazily."""
    global _pool
    close_pool()
    _pool = ConnectionPool(
        database_url,
        min_size=1,
        max_size=max_size,
        timeout=POOL_TIMEOUT_S,
        kwargs={"row_factory": scrubbed_dict_row, "connect_timeout": 2},
        # A connection the server dropped (a restart, a crash) is replaced before it is handed
        # out, instead of failing the first requests after PostgreSQL comes back.
        check=_check_if_idle,
        open=False,
        name="docora-admin",
    )
    _pool.open(wait=False)
    return _pool


# Columns that hold error text written by any component (ours, another, an older version):
# scrubbed of URL credentials whenever they are read (redact.scrub).
SCRUBBED_COLUMNS = frozenset({"last_error", "error"})


def scrubbed_dict_row(cursor):
    """psycopg's dict_row, with SCRUBBED_COLUMNS scrubbed; a result without them costs
    nothing more."""
    make = dict_row(cursor)
    names = [column.name for column in cursor.description or ()]
    scrubbed = [name for name in names if name in SCRUBBED_COLUMNS]
    if not scrubbed:
        return make

    def row(values):
        made = make(values)
        for name in scrubbed:
            if isinstance(made[name], str):
                made[name] = redact.scrub(made[name])
        return made
    return row


def _check_if_idle(conn):
    returned_at = getattr(conn, "_docora_returned_at", None)
    if returned_at is not None and time.monotonic() - returned_at > CHECK_IDLE_S:
        ConnectionPool.check_connection(conn)


def close_pool():
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None


@contextlib.contextmanager
def connection():
    """Borrow a pooled connection for one unit of work; commit on success, roll back on error."""
    if _pool is None:
        raise RuntimeError("database pool is not open: call db.open_pool() at start-up")
    try:
        with _pool.connection() as conn:
            try:
                yield conn
            finally:
                conn._docora_returned_at = time.monotonic()  # for _check_if_idle
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable("database unavailable") from exc
    except PoolTimeout as exc:
        raise DatabaseUnavailable("timed out waiting for a database connection") from exc


@contextlib.contextmanager
def autocommit_connection(synchronous_commit=True):
    """Borrow a pooled connection in autocommit mode: each statement is its own transaction
    (no BEGIN and COMMIT round trips); `conn.transaction()` still groups statements.

    synchronous_commit=False turns on PostgreSQL's asynchronous commit for this borrowing: a
    commit returns before its WAL is on disk. A crash of the database server (not of this
    process) can then lose the last ~0.6 s of commits, each whole or not at all; callers must
    be able to redo them."""
    with connection() as conn:
        conn.autocommit = True
        if not synchronous_commit:
            conn.execute("SET synchronous_commit = off")
        try:
            yield conn
        finally:
            if not conn.closed:  # hand it back as the pool gave it
                if not synchronous_commit:
                    conn.execute("RESET synchronous_commit")
                conn.autocommit = False


# A migration whose first line is this marker runs outside a transaction, one statement at a
# time: what CREATE INDEX CONCURRENTLY (building an index without blocking writes to a big table)
# requires. Its statements end with ";" at the end of a line (no function bodies), and it must be
# safe to run again: a statement that fails leaves the migration unrecorded, and a failed
# concurrent build leaves an INVALID index, so drop it first
# (DROP INDEX CONCURRENTLY IF EXISTS …; CREATE INDEX CONCURRENTLY …).
NO_TRANSACTION_MARKER = "-- docora:no-transaction"


def _migration_files():
    folder = resources.files("docora_admin") / "migrations"
    return sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql"))


def _statements(sql):
    """The statements of a no-transaction migration: split at ";" ending a line, comments
    dropped."""
    statements, current = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements


def _apply(conn, name, sql):
    if sql.lstrip().startswith(NO_TRANSACTION_MARKER):
        for statement in _statements(sql):
            conn.execute(statement)  # autocommit: each statement on its own
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (name,))
        return
    with conn.transaction():
        conn.execute(sql)
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (name,))


def migrate(database_url, files=None):
    """Apply every migration not yet recorded in schema_migrations, in order, each in its own
    transaction (or, marked NO_TRANSACTION_MARKER, statement by statement outside one). An
    advisory lock makes concurrent runs (web and worker starting together) safe. `files`
    ([(name, sql)], tests only) replaces the package's migrations. Returns the names applied
    by this call."""
    applied_now = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('docora_admin.migrate'))")
        try:
            conn.execute("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version text PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )""")
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for name, sql in (_migration_files() if files is None else files):
                if name in done:
                    continue
                _apply(conn, name, sql)
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('docora_admin.migrate'))")
    return applied_now
