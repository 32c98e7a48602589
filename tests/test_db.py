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
