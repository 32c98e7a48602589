"""What `scripts/test` runs: make sure PostgreSQL and Redis answer, then run pytest.

The suite gets database `docora_admin_test` and Redis db 15 of the chosen servers (see
services.py), unless TEST_DATABASE_URL / TEST_REDIS_URL say otherwise. DATABASE_URL and
REDIS_URL are deliberately not used: the tests empty every table and the Redis db they use.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from services import ROOT, Services  # noqa: E402


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(args):
    # Until pytest runs, any of these stops us cleanly (SIGINT is set explicitly because a shell
    # starting us in the background leaves it ignored).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    services = Services("test")
    try:
        env = dict(os.environ)
        env["TEST_DATABASE_URL"] = services.database_url("docora_admin_test", "TEST_DATABASE_URL")
        env["TEST_REDIS_URL"] = services.redis_url(15, "TEST_REDIS_URL")
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        # pytest stays in the terminal's foreground process group so that --pdb works and
        # Ctrl-C reaches it directly; this process ignores that SIGINT (a second one would cut
        # pytest's teardown short, leaving the servers the tests started behind). A SIGTERM or
        # SIGHUP sent to us is passed on to pytest as one SIGINT. Either way we wait for pytest.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pytest = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", *args],
                                  env=env, cwd=ROOT,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while True:
            try:
                code = pytest.wait()
                break
            except KeyboardInterrupt:
                pytest.send_signal(signal.SIGINT)
        return code if code >= 0 else 128 - code
    except KeyboardInterrupt:
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        services.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
