"""What `scripts/flask` runs: `flask --app app …` with the environment scripts/run gives the app
(scripts/devenv.py), so every CLI command works on the embedded path too, whose ports change on
every start. It uses the servers the scripts/run running now is using (var/run.json), else finds
or starts them as scripts/run would (embedded ones only for as long as the command runs); its own
messages go to stderr, the command's output is left alone."""
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devenv import app_environment  # noqa: E402
from services import ROOT, Services, say  # noqa: E402


def main(args):
    services = Services("flask")
    services.say = lambda message: say(f"flask: {message}", sys.stderr)
    try:
        env = app_environment(services, join_run=True)
        return subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", *args],
                              env=env, cwd=ROOT).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        services.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
