"""Real processes for integration tests: the web app under gunicorn and a Huey consumer."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import TEST_ENV

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(**overrides):
    env = dict(os.environ)
    env.update(TEST_ENV)
    env.update({k: str(v) for k, v in overrides.items()})
    env["PYTHONPATH"] = str(ROOT)
    return env


class Process:
    def __init__(self, args, env, log_path, stop_signal=signal.SIGINT):
        self.stop_signal = stop_signal
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=None, timeout=15):
        """The process's stop_signal (SIGINT lets huey finish its running task) by default;
        SIGKILL is a crash."""
        sig = sig or self.stop_signal
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def kill(self):
        self.stop(signal.SIGKILL)


def start_web(log_dir, workers=1, threads=8, **env):
    port = free_port()
    web = Process([str(BIN / "gunicorn"), "app:create_app()", "-b", f"127.0.0.1:{port}",
                   "-w", str(workers), "--threads", str(threads), "--graceful-timeout", "1"],
                  process_env(**env), Path(log_dir) / "web.log",
                  # SIGTERM, gunicorn's graceful stop (as scripts/devserver.py stops it). Its
                  # quick stop (SIGINT, SIGQUIT) can hang a gthread worker: the worker's handler
                  # shuts its thread pool down, taking a lock that the main thread, interrupted
                  # while handing a connection to that pool, already holds. The master then
                  # waits out graceful_timeout (30 s by default) before it kills the worker, and
                  # we waited 15 s. The graceful stop lingers up to graceful_timeout (at most 2 s)
                  # for kept-alive connections, such as an idle Chromium's: 1 s here.
                  stop_signal=signal.SIGTERM)
    web.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(web.url + "/admin/login", timeout=1)
            return web
        except OSError:
            if web.proc.poll() is not None:
                break
            time.sleep(0.2)
    web.stop()
    raise RuntimeError(f"web server did not start:\n{web.log()}")


def start_consumer(log_dir, workers=2, name="consumer", **env):
    consumer = Process([str(BIN / "huey_consumer"), "app.huey", "-w", str(workers), "-k",
                        "thread", "--flush-locks", "-d", "0.05", "-m", "0.5"],
                       process_env(**env), Path(log_dir) / f"{name}.log")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "consumer started" not in consumer.log().lower():
        if consumer.proc.poll() is not None:
            raise RuntimeError(f"consumer exited:\n{consumer.log()}")
        time.sleep(0.1)
    return consumer


def wait_for(predicate, timeout, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
