# Sourced by scripts/run, scripts/test and .ci/run: a virtualenv with the Python packages and
# htmx copied into static/vendor/. Each step is skipped when its inputs have not changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p var

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

# Re-install only when a requirements file changed since the last successful install.
stamp="var/.requirements.sha256"
wanted="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "setup: installing Python packages"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi

# htmx comes from the npm registry, never a CDN, and is not committed.
if [ ! -f static/vendor/htmx.min.js ] || ! grep -q '"version": "2' node_modules/htmx.org/package.json 2>/dev/null; then
  echo "setup: installing htmx from npm"
  npm install --no-audit --no-fund --loglevel=error
  mkdir -p static/vendor
  cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
fi
