"""The private servers fault-injection tests crash: what they promise must hold for real, or a
fault test would prove nothing (a crash that checkpoints, a Redis that reloads its data)."""
import psycopg
import pytest
import redis

from tests.private_services import (  # noqa: F401 - fixtures
    PrivatePostgres,
    PrivateRedis,
    private_postgres,
    private_redis,
)

pytestmark = pytest.mark.no_services


def _scalar(url, query, params=()):
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(query, params).fetchone()[0]


def test_postgres_keeps_committed_rows_through_a_crash(private_postgres):  # noqa: F811
    url = private_postgres.url
    assert url == f"postgresql://postgres@127.0.0.1:{private_postgres.port}/docora_fault"
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE crash_probe (note text)")
        conn.execute("INSERT INTO crash_probe VALUES ('committed before the crash')")
    # The commit returned only once its WAL was flushed: the crash cannot take it back.
    assert _scalar(url, "SHOW synchronous_commit") == "on"

    private_postgres.crash()
    assert not private_postgres.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()

    private_postgres.restart()

    assert _scalar(url, "SELECT note FROM crash_probe") == "committed before the crash"
    assert _scalar(url, "SELECT to_regclass('app_repositories') IS NOT NULL") is True
    # Came back through crash recovery, not from a shutdown checkpoint.
    assert "not properly shut down" in private_postgres.log_path.read_text()


def test_postgres_listens_on_loopback_only(private_postgres):  # noqa: F811
    assert _scalar(private_postgres.url, "SHOW listen_addresses") == "127.0.0.1"
    assert _scalar(private_postgres.url, "SHOW unix_socket_directories") == ""
    assert _scalar(private_postgres.url, "SHOW fsync") == "on"


def test_postgres_clean_stop_and_start(tmp_path):
    server = PrivatePostgres(tmp_path, database="docora_clean")
    try:
        server.start()
        port = server.port
        server.stop()
        server.start()
        assert server.port == port
        assert _scalar(server.url, "SELECT current_database()") == "docora_clean"
    finally:
        server.close()
        server.close()  # idempotent
    assert not server.running
    assert not server.log_path.parent.exists()


def test_redis_restarts_empty_on_the_same_port(private_redis):  # noqa: F811
    port = private_redis.port
    assert private_redis.url == f"redis://127.0.0.1:{port}/0"
    with redis.Redis.from_url(private_redis.url) as client:
        client.set("docora:probe", "before the kill")

    private_redis.kill()
    with redis.Redis.from_url(private_redis.url, socket_connect_timeout=1) as client:
        with pytest.raises(redis.ConnectionError):
            client.ping()

    private_redis.restart_empty()

    assert private_redis.port == port
    with redis.Redis.from_url(private_redis.url) as client:
        assert client.ping()
        assert client.get("docora:probe") is None


def test_redis_close_removes_everything(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    home = server.log_path.parent
    server.close()
    server.close()
    assert not server.running
    assert not home.exists()
