"""What `scripts/run` runs: services, dev secrets, migrations, demo data, web, worker, extras.

Ctrl-C or SIGTERM stops everything it started, in order: the web server, worker and extras
first, then the embedded PostgreSQL/Redis they were using. If the web server or the worker dies,
the rest is stopped too: a half-running stack is more confusing than a stopped one.
"""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devenv import app_environment, forget_run, record_run  # noqa: E402
from services import ROOT, VAR, Services, say, tcp_answers  # noqa: E402

BIN = ROOT / ".venv" / "bin"
PORT = int(os.environ.get("PORT", "5000"))

DEVTOOLS = ROOT / "devtools"
RECEIVER_PORT = int(os.environ.get("DEMO_RECEIVER_PORT", "8765"))

# Optional processes, started when their file exists: the dev tooling, not the admin package,
# owns them. Unlike web and worker, one of these exiting does not stop the rest.
EXTRAS = [
    ("receiver", DEVTOOLS / "receiver.py",
     [str(BIN / "python"), "-m", "devtools.receiver", "--port", str(RECEIVER_PORT)]),
]


def live_demo_args():
    """With devtools/ present, the demo is live: local git repositories (devtools.demo_repos) and
    apps whose webhooks go to the demo receiver. These are the extra `demo-data` options for it;
    they only matter the first time, when the database is empty."""
    if not ((DEVTOOLS / "demo_repos.py").exists() and (DEVTOOLS / "receiver.py").exists()):
        return []
    repos = VAR / "demo-repos.json"
    subprocess.run([str(BIN / "python"), "-m", "devtools.demo_repos", str(repos)], cwd=ROOT,
                   check=True)
    return ["--repos-file", str(repos), "--receiver-url", f"http://127.0.0.1:{RECEIVER_PORT}",
            "--receiver-config", str(VAR / "receiver.json")]


def wait_until_serving(url, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=1)
            return True
        except OSError:
            time.sleep(0.2)
    return False


def forward_output(proc, ready_line):
    """Copy a child's output to ours line by line (a thread), and return an Event set when a
    line containing `ready_line` has passed (or the output ended)."""
    ready = threading.Event()

    def copy():
        for raw in proc.stdout:
            sys.stdout.buffer.write(raw)
            sys.stdout.flush()
            if ready_line.encode() in raw.lower():
                ready.set()
        ready.set()

    threading.Thread(target=copy, daemon=True, name="forward-output").start()
    return ready


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    # SIGTERM (e.g. `kill`) and SIGHUP (the terminal closed) take the same way out as Ctrl-C.
    # SIGINT is set too because a shell starting us in the background (`scripts/run &`) leaves
    # it ignored, and Python then never raises KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    services = Services("run")
    children = []

    def stop_all():
        # A second Ctrl-C must not cut the clean-up short and leave an embedded server behind;
        # every wait below is bounded instead.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for name, proc in children:
            if proc.poll() is None:
                # SIGINT lets the Huey consumer finish the task it is running; gunicorn treats
                # SIGTERM as a graceful stop.
                proc.send_signal(signal.SIGINT if name == "worker" else signal.SIGTERM)
        for name, proc in children:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                say(f"run: {name} did not stop in 30 s; killing it", sys.stderr)
                proc.kill()
                proc.wait()
        forget_run()
        services.stop()

    try:
        # Checked first: otherwise gunicorn fails only after the migrations, and an app already
        # on that port would answer our readiness check.
        if tcp_answers("127.0.0.1", PORT):
            say(f"run: 127.0.0.1:{PORT} is already in use; stop that or set PORT", sys.stderr)
            return 1
        env = app_environment(services)
        record_run(env)  # scripts/flask uses the same servers
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # /metrics (with METRICS_TOKEN set) merges both web workers' request timings
            # through files here; prometheus_client wants it empty at start.
            metrics_dir = VAR / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        flask = [str(BIN / "flask"), "--app", "app"]
        subprocess.run(flask + ["migrate"], env=env, cwd=ROOT, check=True)
        subprocess.run(flask + ["demo-data", *live_demo_args()], env=env, cwd=ROOT, check=True)

        started = {}

        def start(name, args, ready_line=None):
            # Each in its own process group: a Ctrl-C reaches only this script, which then
            # stops every child exactly once and in order (a child that got the terminal's
            # SIGINT and then ours would cut its own graceful shutdown short).
            piped = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if ready_line else {}
            proc = subprocess.Popen(args, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                    process_group=0, **piped)
            children.append((name, proc))
            if ready_line:
                started[name] = forward_output(proc, ready_line)

        # Extras first: the worker starts delivering webhooks to the receiver at once.
        for name, marker, args in EXTRAS:
            if marker.exists():
                start(name, args)
        start("web", [str(BIN / "gunicorn"), "app:create_app()", "-b", f"127.0.0.1:{PORT}",
                      "-w", "2", "--threads", "4", "--access-logfile", "-"])
        start("worker", [str(BIN / "huey_consumer"), "app.huey", "-w", "4", "-k", "thread",
                         "--flush-locks"], ready_line="consumer started")
        essential = {"web", "worker"}

        url = f"http://127.0.0.1:{PORT}/admin/"
        # The banner comes last, once everything answers, so that it is not buried under
        # start-up lines: the web server is ready (PostgreSQL and Redis answer it), the worker
        # has said it started, the demo receiver takes connections.
        if not wait_until_serving(f"http://127.0.0.1:{PORT}/readyz", dict(children)["web"]):
            say(f"run: the web server is not answering on {url}", sys.stderr)
        if not started["worker"].wait(30):
            say("run: the worker has not reported that it started", sys.stderr)
        if any(name == "receiver" for name, _ in children):
            deadline = time.monotonic() + 10
            while not tcp_answers("127.0.0.1", RECEIVER_PORT) and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(0.3)  # let the last start-up lines reach the terminal first
        if env.get("ADMIN_PASSWORD_HASH"):
            login = f"{env['ADMIN_USERNAME']} / (the password behind ADMIN_PASSWORD_HASH)"
        else:
            where = "environment" if os.environ.get("ADMIN_PASSWORD") else "var/dev.env"
            login = f"{env['ADMIN_USERNAME']} / {env['ADMIN_PASSWORD']}   (from {where})"
        say(f"\n  Docora Admin: {url}\n  Log in as:    {login}\n"
            f"  Running:      {', '.join(name for name, _ in children)}; "
            "Ctrl-C stops everything.\n")
        reported = set()

        while True:
            for name, proc in children:
                if proc.poll() is not None and name in essential:
                    say(f"run: {name} exited with status {proc.returncode}; stopping the rest",
                        sys.stderr)
                    return 1
                if proc.poll() is not None and name not in reported:
                    reported.add(name)
                    say(f"run: {name} exited with status {proc.returncode}; "
                        "the rest keeps running", sys.stderr)
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("\nrun: stopping")
        return 0
    except subprocess.CalledProcessError as exc:
        command = " ".join([Path(exc.cmd[0]).name, *exc.cmd[1:]])
        say(f"run: `{command}` failed (status {exc.returncode})", sys.stderr)
        return exc.returncode or 1
    finally:
        stop_all()
        say("run: stopped")


if __name__ == "__main__":
    sys.exit(main())
