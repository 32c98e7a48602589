"""What `scripts/run` runs: services, secrets, migrations, demo data, web and worker.

Stops everything it started on Ctrl-C (or SIGTERM), and stops everything if one part dies.
"""
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from services import ROOT, VAR, Services  # noqa: E402

BIN = ROOT / ".venv" / "bin"
PORT = int(os.environ.get("PORT", "5000"))


def dev_secrets():
    """Secrets for this checkout, made once and kept in var/dev.env (git-ignored)."""
    path = VAR / "dev.env"
    if not path.exists():
        path.write_text(
            f"SECRET_KEY={secrets.token_hex(32)}\n"
            f"ENCRYPTION_KEY={secrets.token_hex(32)}\n"
            "ADMIN_USERNAME=admin\n"
            f"ADMIN_PASSWORD={secrets.token_urlsafe(12)}\n")
        path.chmod(0o600)
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    # Anything set in the environment wins over the generated values.
    return {k: os.environ.get(k, v) for k, v in values.items()}


def main():
    services = Services()
    children = []

    def stop_all(*_):
        for name, proc in reversed(children):
            if proc.poll() is None:
                # SIGINT lets the Huey consumer finish the task it is running.
                proc.send_signal(signal.SIGINT if name == "worker" else signal.SIGTERM)
        for name, proc in children:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        services.stop()

    try:
        env = dict(os.environ)
        env["DATABASE_URL"] = services.database_url("docora_admin")
        env["REDIS_URL"] = services.redis_url(0)
        env.update(dev_secrets())
        env.setdefault("FLASK_APP", "app")
        for note in services.notes:
            print(f"run: {note}")
        flask = [str(BIN / "flask"), "--app", "app"]
        subprocess.run(flask + ["migrate"], env=env, cwd=ROOT, check=True)
        subprocess.run(flask + ["demo-data"], env=env, cwd=ROOT, check=True)

        def start(name, args):
            children.append((name, subprocess.Popen(args, env=env, cwd=ROOT)))

        start("web", [str(BIN / "gunicorn"), "app:create_app()", "-b", f"127.0.0.1:{PORT}",
                      "-w", "2", "-k", "gthread", "--threads", "4", "--access-logfile", "-"])
        start("worker", [str(BIN / "huey_consumer"), "app.huey", "-w", "4", "-k", "thread",
                         "--flush-locks"])
        # The demo's webhook receiver lives in the dev tooling, not in the admin package.
        if (ROOT / "devtools" / "receiver.py").exists():
            start("receiver", [str(BIN / "python"), "-m", "devtools.receiver"])

        print(f"\nDocora Admin: http://127.0.0.1:{PORT}/admin/")
        print(f"Log in as {env['ADMIN_USERNAME']} / {env['ADMIN_PASSWORD']} "
              "(kept in var/dev.env)")
        print("Ctrl-C stops the web server, the worker and any embedded database.\n",
              flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"run: {name} exited with {proc.returncode}; stopping everything",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nrun: stopping")
        return 0
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
