"""A client app for benchmarks: a keep-alive HTTP/1.1 receiver that checks every Docora signature.

    .venv/bin/python bench/keepalive_receiver.py KEYS.json   # prints its port, then serves

KEYS.json maps app ids to their client auth keys; app N's base URL is
http://127.0.0.1:PORT/<app_id>. Unlike tests/webhook_receiver.py it keeps connections open
(HTTP/1.1) and sets TCP_NODELAY on them: without it, a small answer on a kept-alive connection
waits for the client's delayed ACK (Nagle), about 40 ms per request.

It counts what a benchmark needs and answers it on GET /_stats (POST /_reset zeroes it):
requests, files acknowledged (a chunked file when its last chunk arrives), their bytes, new TCP
connections that carried a webhook, bad signatures, the time of the last acknowledged file and
its own CPU seconds.
"""
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = self.files = self.bytes = self.connections = self.bad_signatures = 0
        self.last_file_at = None

    def as_dict(self):
        cpu = os.times()
        return {"requests": self.requests, "files": self.files, "bytes": self.bytes,
                "connections": self.connections, "bad_signatures": self.bad_signatures,
                "last_file_at": self.last_file_at, "cpu_s": cpu.user + cpu.system}


def serve(keys):
    counters = Counters()
    encoded_keys = {app_id: key.encode() for app_id, key in keys.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.counted = False  # a connection counts once it carries a webhook (not /_stats)

        def do_GET(self):
            if self.path == "/_stats":
                with counters.lock:
                    self._answer(200, json.dumps(counters.as_dict()).encode())
            else:
                self._answer(404, b"{}")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/_reset":
                with counters.lock:
                    counters.reset()
                self._answer(200, b"{}")
                return
            app_id = self.headers.get("X-Docora-App-Id", "")
            ts = self.headers.get("X-Docora-Timestamp", "")
            key = encoded_keys.get(app_id)
            good = (key is not None and self.path.startswith(f"/{app_id}/")
                    and ts.isdigit() and abs(time.time() - int(ts)) < 300
                    and hmac.compare_digest(
                        "sha256=" + hmac.new(key, ts.encode() + b"." + body,
                                             hashlib.sha256).hexdigest(),
                        self.headers.get("X-Docora-Signature", "")))
            if not good:
                with counters.lock:
                    counters.bad_signatures += 1
                self._answer(401, b"{}")
                return
            file = json.loads(body)["file"]
            chunk = file.get("chunk")
            done = chunk is None or chunk["index"] == chunk["total"] - 1
            with counters.lock:
                counters.requests += 1
                if not self.counted:
                    counters.connections += 1
                    self.counted = True
                if done:
                    counters.files += 1
                    counters.bytes += file.get("size", 0)
                    counters.last_file_at = time.time()
            self._answer(200, b"{}")

        def _answer(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


@contextmanager
def running(keys):
    """This receiver in a process of its own for `keys` ({app_id: client auth key}), for a
    benchmark's with-block: yields its port, and kills it after."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(keys, file)
    process = subprocess.Popen([sys.executable, __file__, file.name], stdout=subprocess.PIPE,
                               text=True)
    try:
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()
        os.unlink(file.name)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        serve(json.load(handle))
