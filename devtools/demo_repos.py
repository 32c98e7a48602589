"""Local git repositories for the demo, under var/demo-repos/ (made once, then reused)."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("DOCORA_VAR_DIR") or ROOT / "var")  # as scripts/services.py
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="Docora Demo", GIT_AUTHOR_EMAIL="demo@example.com",
               GIT_COMMITTER_NAME="Docora Demo", GIT_COMMITTER_EMAIL="demo@example.com")


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def create(names, base=None):
    """{"owner/name": "file:///…"} for a git repository per name, each with a few text files
    and a small binary."""
    base = Path(base or VAR / "demo-repos")
    urls = {}
    for full_name in names:
        path = base / full_name.replace("/", "__")
        if not (path / ".git").is_dir():
            (path / "docs").mkdir(parents=True, exist_ok=True)
            (path / "README.md").write_text(f"# {full_name}\n\nDemo repository for Docora.\n")
            (path / "docs" / "getting-started.md").write_text(
                f"# Getting started with {full_name}\n\n1. Install.\n2. Configure.\n3. Run.\n")
            (path / "docs" / "changelog.md").write_text("## 1.0.0\n\n- First release.\n")
            (path / "docs" / "logo.png").write_bytes(bytes(range(256)) * 16)
            _git("init", "--quiet", "-b", "main", cwd=path)
            _git("add", "-A", cwd=path)
            _git("commit", "--quiet", "-m", "Initial import", cwd=path)
        urls[full_name] = path.as_uri()
    return urls


DEMO_NAMES = [f"{owner}/{name}" for owner in ("acme", "globex-oss", "initech", "umbrella-labs",
                                              "hooli", "piedpiper", "stark-ind", "tyrell")
              for name in ("docs", "handbook", "api-reference", "runbooks", "changelog")]


if __name__ == "__main__":
    import json
    import sys

    # python -m devtools.demo_repos OUT.json: make the repositories, write {"owner/name": url}.
    out = Path(sys.argv[1] if len(sys.argv) > 1 else VAR / "demo-repos.json")
    out.write_text(json.dumps(create(DEMO_NAMES), indent=2))
    print(f"demo repositories: {len(DEMO_NAMES)} in {VAR / 'demo-repos'}")
