import psycopg

from docora_admin import db
from tests.conftest import TEST_DATABASE_URL


def test_migrations_are_recorded_and_safe_to_run_twice(migrated_database):
    assert db.migrate(TEST_DATABASE_URL) == []
    assert db.migrate(TEST_DATABASE_URL) == []
    with psycopg.connect(TEST_DATABASE_URL) as conn:
        versions = [r[0] for r in conn.execute(
            "SELECT version FROM schema_migrations ORDER BY version")]
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert versions[:3] == ["001_docora_schema.sql", "002_status_changed_at.sql",
                            "003_bulk_operations.sql"]
    assert {"apps", "repositories", "app_repositories", "repository_snapshots",
            "snapshot_files", "app_delivered_files", "bulk_operations"} <= tables


def test_fresh_schema_migrates_from_scratch(migrated_database):
    """Apply everything into an empty schema of its own, twice."""
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS migrate_check CASCADE")
        conn.execute("CREATE SCHEMA migrate_check")
    # public stays on the path for extensions (pg_trgm) installed database-wide.
    url = TEST_DATABASE_URL + "?options=-csearch_path%3Dmigrate_check,public"
    try:
        first = db.migrate(url)
        assert first and first == sorted(first)
        assert db.migrate(url) == []
    finally:
        with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
            conn.execute("DROP SCHEMA migrate_check CASCADE")


def test_status_change_touches_updated_at(seed):
    app_id = seed.app()
    repo = seed.repo()
    seed.link(app_id, repo, age_minutes=600)
    with db.connection() as conn:
        before = conn.execute("SELECT updated_at FROM app_repositories").fetchone()["updated_at"]
        conn.execute("UPDATE app_repositories SET retry_count = 1")
        same = conn.execute("SELECT updated_at FROM app_repositories").fetchone()["updated_at"]
        conn.execute("UPDATE app_repositories SET status = 'pending_snapshot'")
        after = conn.execute("SELECT updated_at FROM app_repositories").fetchone()["updated_at"]
    assert same == before < after


def test_autocommit_borrowing_hands_the_connection_back_as_it_was(app):
    with db.autocommit_connection(synchronous_commit=False) as conn:
        assert conn.autocommit is True
        assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "off"
    assert conn.autocommit is False
    with conn.transaction():
        assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "on"


def test_a_no_transaction_migration_can_build_an_index_concurrently(migrated_database):
    """Marked `-- docora:no-transaction`, a migration runs statement by statement outside a
    transaction: CREATE INDEX CONCURRENTLY works there (and fails in a normal one)."""
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS concurrent_check CASCADE")
        conn.execute("CREATE SCHEMA concurrent_check")
    url = TEST_DATABASE_URL + "?options=-csearch_path%3Dconcurrent_check,public"
    table = ("001_table.sql", "CREATE TABLE t (id int, v text);\nINSERT INTO t VALUES (1, 'a');")
    concurrent = ("002_index.sql", db.NO_TRANSACTION_MARKER + "\n"
                  "-- a comment line\n"
                  "DROP INDEX CONCURRENTLY IF EXISTS t_v_idx;\n"
                  "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v_idx\n    ON t (v);\n")
    try:
        assert db.migrate(url, files=[table, concurrent]) == ["001_table.sql", "002_index.sql"]
        assert db.migrate(url, files=[table, concurrent]) == []
        with psycopg.connect(url) as conn:
            valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                 "'concurrent_check.t_v_idx'::regclass").fetchone()[0]
        assert valid is True
        unmarked = ("003_index.sql", "CREATE INDEX CONCURRENTLY t_id_idx ON t (id);\nSELECT 1;")
        try:
            db.migrate(url, files=[table, concurrent, unmarked])
        except psycopg.errors.ActiveSqlTransaction:
            pass
        else:
            raise AssertionError("CONCURRENTLY ran inside a transaction")
    finally:
        with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
            conn.execute("DROP SCHEMA concurrent_check CASCADE")
