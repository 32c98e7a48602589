"""What `scripts/test` runs: make sure PostgreSQL and Redis answer, then run pytest.

The suite gets database `docora_admin_test` and Redis db 15 of the chosen servers (see
services.py), unless TEST_DATABASE_URL / TEST_REDIS_URL are set.
"""
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from services import ROOT, Services  # noqa: E402


def main(args):
    services = Services()
    try:
        env = dict(os.environ)
        if not env.get("TEST_DATABASE_URL"):
            env.pop("DATABASE_URL", None)  # a developer's own database is never the test one
            env["TEST_DATABASE_URL"] = services.database_url("docora_admin_test")
        if not env.get("TEST_REDIS_URL"):
            env.pop("REDIS_URL", None)
            env["TEST_REDIS_URL"] = services.redis_url(15)
        for note in services.notes:
            print(f"test: {note}")
        return subprocess.call([str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", *args],
                               env=env, cwd=ROOT)
    finally:
        services.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
