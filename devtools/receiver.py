"""The demo's client apps: one local HTTP server answering every demo app's webhooks.

    python -m devtools.receiver [--port 8765]     serve
    python -m devtools.receiver fix [APP_ID ...]  make broken apps answer 200 again
    flask --app app demo-break                    break them again (and make their links
                                                  deliver again), to replay fix → retry all

Apps live under /apps/<app_id>/ (create|update|delete). Each app's behaviour comes from
var/receiver.json, written by the demo data: "ok" (200 after checking the signature), "error"
(HTTP 500) or "timeout" (answers after 40 s, past the delivery timeout). The file is read on
every request, so `fix` takes effect at once.
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# var/receiver.json, or under DOCORA_VAR_DIR (as scripts/services.py).
CONFIG = Path(os.environ.get("DOCORA_VAR_DIR")
              or Path(__file__).resolve().parent.parent / "var") / "receiver.json"


def load():
    try:
        return json.loads(CONFIG.read_text())
    except (OSError, ValueError):
        return {}


class Handler(BaseHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        # Deliveries that succeed are the normal case: one line per failed answer only, so the
        # run's terminal is not a line per delivered file.
        if not (isinstance(code, int) and 200 <= code < 300):
            super().log_request(code, size)

    def log_message(self, fmt, *args):
        sys.stderr.write("receiver: " + fmt % args + "\n")

    def do_POST(self):
        parts = self.path.strip("/").split("/")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        app = load().get(parts[1]) if len(parts) == 3 and parts[0] == "apps" else None
        if app is None:
            return self._answer(404, {"error": "unknown app"})
        ts = self.headers.get("X-Docora-Timestamp", "")
        expected = "sha256=" + hmac.new(app["key"].encode(), f"{ts}.".encode() + body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.headers.get("X-Docora-Signature", "")):
            return self._answer(401, {"error": "invalid signature"})
        if app["mode"] == "timeout":
            time.sleep(40)
        if app["mode"] == "error":
            return self._answer(500, {"error": "internal error (demo)"})
        return self._answer(200, {"ok": True})

    def _answer(self, status, payload):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the "timeout" app's caller gave up long ago: that is the point


def fix(app_ids):
    config = load()
    for app_id, app in config.items():
        if not app_ids or app_id in app_ids:
            app["mode"] = "ok"
    CONFIG.write_text(json.dumps(config, indent=2))
    CONFIG.chmod(0o600)
    print(f"receiver: {len(app_ids) or 'all'} app(s) now answer 200")


def main():
    parser = argparse.ArgumentParser(description="Demo webhook receiver")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "fix"])
    parser.add_argument("app_ids", nargs="*")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.command == "fix":
        return fix(args.app_ids)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"receiver: demo apps answering on http://127.0.0.1:{args.port}/apps/<app_id>/",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
