"""Shared fixtures: a real PostgreSQL database and a real Redis db of the suite's own, emptied
before every test. Set TEST_DATABASE_URL / TEST_REDIS_URL to point elsewhere."""
import os
import secrets

import psycopg
import pytest
from psycopg import sql

TEST_DATABASE_URL = os.environ.setdefault(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/docora_admin_test")
TEST_REDIS_URL = os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "correct horse battery"
ENCRYPTION_KEY_HEX = "0f" * 32

# The huey object and create_app() read the environment: point both at the test services
# before anything of the app is imported.
TEST_ENV = {
    "DATABASE_URL": TEST_DATABASE_URL,
    "REDIS_URL": TEST_REDIS_URL,
    "SECRET_KEY": "test-secret-key-" + secrets.token_hex(8),
    "ADMIN_USERNAME": ADMIN_USERNAME,
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
    "ENCRYPTION_KEY": ENCRYPTION_KEY_HEX,
    "MAX_RETRY_ATTEMPTS": "5",
    # The suite's receivers are plain http on 127.0.0.1 (tests that need the production rule
    # turn it off: tests/test_webhook_address.py).
    "ALLOW_PRIVATE_WEBHOOKS": "true",
    "TESTING": "1",
}
os.environ.update(TEST_ENV)

TABLES = ["audit_events", "app_delivery_control", "delivery_attempts", "bulk_operation_targets", "bulk_operations", "app_delivered_files", "snapshot_files",
          "repository_snapshots", "app_repositories", "repositories", "apps", "job_outbox"]


def _ensure_database(url):
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.pop("dbname")
    admin_url = psycopg.conninfo.make_conninfo(**info, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def migrated_database():
    from docora_admin import db, db_roles

    _ensure_database(TEST_DATABASE_URL)
    db.migrate(TEST_DATABASE_URL)
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        db_roles.store_retention(conn, 400)  # as `flask migrate` does (AUDIT_RETENTION_DAYS)
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
def app(migrated_database):
    from docora_admin import create_app
    from docora_admin.huey_app import huey

    # Tests run tasks by dequeuing them here: an empty queue answers at once, not after the
    # blocking pop's read_timeout (1 s) a consumer waits for its next job.
    huey.storage.blocking = False
    return create_app()


@pytest.fixture(autouse=True)
def clean_state(request):
    """Empty every table and the Redis test db before each test that touches them."""
    if "no_services" in request.keywords:
        yield
        return
    request.getfixturevalue("app")
    import redis

    from docora_admin import db

    for attempt in range(5):
        try:
            with db.connection() as conn:
                conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(
                    sql.SQL(", ").join(map(sql.Identifier, TABLES))))
                # The ADMIN_USERNAME account stays (create_app made it; every login helper
                # uses it).
                conn.execute("DELETE FROM accounts WHERE NOT from_environment")
            break
        except db.DatabaseUnavailable as exc:
            # A consumer a module's tests share (its watchdog, a job of the test before) may
            # hold these tables in the other order: PostgreSQL ends one side of the deadlock.
            if not isinstance(exc.__cause__, psycopg.errors.DeadlockDetected) or attempt == 4:
                raise
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    yield


@pytest.fixture
def empty_queue(app):
    """A Huey queue with nothing in it before and after the test."""
    from docora_admin.huey_app import huey

    huey.flush()
    yield huey
    huey.flush()


@pytest.fixture
def client(app):
    return app.test_client()


class AuthActions:
    """Log in and out through the JSON API, the same way a script does."""

    def __init__(self, client):
        self._client = client
        self.csrf_token = None

    def login(self, username=ADMIN_USERNAME, password=ADMIN_PASSWORD):
        response = self._client.post("/admin/api/login",
                                     json={"username": username, "password": password})
        if response.status_code == 200:
            self.csrf_token = response.get_json()["csrf_token"]
        return response

    def headers(self, **extra):
        return {"X-CSRFToken": self.csrf_token, **extra}

    def post(self, path, **kwargs):
        headers = kwargs.pop("headers", {})
        return self._client.post(path, headers=self.headers(**headers), **kwargs)

    def delete(self, path, **kwargs):
        headers = kwargs.pop("headers", {})
        return self._client.delete(path, headers=self.headers(**headers), **kwargs)

    def logout(self):
        return self.post("/admin/api/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def logged_in(auth):
    assert auth.login().status_code == 200
    return auth


@pytest.fixture
def seed():
    """Insert apps, repositories and links: seed.link(app, repo, status=..., ...)."""
    from tests.factories import Seeder

    return Seeder()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Let fixtures see whether the test failed (the browser fixture saves a screenshot)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# The browser tests' shared Chromium and kept servers, and the hooks that keep and stop them.
from tests.browser_session import (  # noqa: E402,F401
    browser, chromium, plain_web, pytest_collection_modifyitems, pytest_runtest_teardown,
    pytest_sessionfinish, servers, smoke_servers)
