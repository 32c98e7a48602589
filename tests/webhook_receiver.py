"""A client app for tests: a local HTTP server that checks every request as a client following
Docora's published reference does (tests/reference_client.py: signature over the re-serialised
body, fresh timestamp, body shapes, chunks reassembled and checked) and records what it
receives; `files` holds each file as the client rebuilt it, `violations` what broke the
contract (answered 400). Behaviour per test: answer a status, or sleep past the timeout, or hold one
request unanswered.

It keeps connections alive (HTTP/1.1) with TCP_NODELAY, as a production app server does, so the
tests exercise connection reuse; `connections` counts the TCP connections it accepted."""
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.reference_client import Reassembler, Violation, check_shape, verify

BODY_LIMIT = 1 << 20  # a default Fastify client's: larger bodies get 413


class Receiver:
    def __init__(self, auth_key="client-secret-key", app_id=None):
        self.auth_key = auth_key
        self.app_id = app_id
        self.requests = []  # (action, payload)
        self.headers = []  # the headers of each request in `requests`, a dict each
        self.connections = 0
        # (app id, repository id, action, path, sha) of every acknowledged file, to prove that
        # nothing is delivered twice
        self.deliveries = []
        self.bad_signatures = 0
        self.violations = []  # what broke the contract, one line each (answered 400)
        self.files = {}  # (app id, repository id, path) → the bytes the client rebuilt
        self.reassembler = Reassembler()
        self.too_large = 0  # bodies over BODY_LIMIT (answered 413)
        self.status = 200
        self.delay = 0.0
        self.fail_on = None  # (action, path) answered with 500
        self.hold_on = None  # (action, path) held unanswered until `release` is set
        self.retry_after = None  # a Retry-After header sent with a 429 or 503 status
        self.answer_body = b"{}"  # the body of every answer
        self.answer_headers = []  # (name, value) sent with every answer
        self.arrivals = []  # time.monotonic() of every request whose signature checked out
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it was answering at once
        self.holding = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Without it, an answer on a kept-alive connection waits ~40 ms for the
                # client's delayed ACK (Nagle).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with receiver.lock:
                    receiver.connections += 1

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if len(body) > BODY_LIMIT:
                    receiver.too_large += 1
                    self._answer(413)
                    return
                try:
                    payload = verify(body, self.headers, receiver.auth_key)
                except Violation:
                    payload = None
                app_ok = receiver.app_id is None or \
                    self.headers.get("X-Docora-App-Id") == receiver.app_id
                if payload is None or not app_ok:
                    receiver.bad_signatures += 1
                    self._answer(401)
                    return
                with receiver.lock:
                    receiver.arrivals.append(time.monotonic())
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                try:
                    self._handle(payload)
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1

            def _handle(self, payload):
                if receiver.delay:
                    time.sleep(receiver.delay)
                action = self.path.rsplit("/", 1)[-1]
                try:
                    check_shape(action, payload)
                except (Violation, KeyError, TypeError, AttributeError) as exc:
                    receiver.violations.append(f"{action}: {exc!r}")
                    self._answer(400)
                    return
                if action == "sync_failed":
                    with receiver.lock:
                        receiver.requests.append((action, payload))
                        receiver.headers.append(dict(self.headers))
                    self._answer(receiver.status)
                    return
                if receiver.fail_on == (action, payload["file"]["path"]):
                    self._answer(500)
                    return
                if receiver.hold_on == (action, payload["file"]["path"]):
                    receiver.holding.set()
                    receiver.release.wait(60)
                    self.close_connection = True  # never answered, never acknowledged
                    return
                if receiver.status == 200:
                    if not self._rebuild(action, payload):
                        return
                    receiver.requests.append((action, payload))
                    receiver.headers.append(dict(self.headers))
                    receiver.deliveries.append((
                        self.headers.get("X-Docora-App-Id"),
                        payload["repository"]["repository_id"], action,
                        payload["file"]["path"], payload["file"]["sha"]))
                self._answer(receiver.status)

            def _rebuild(self, action, payload):
                key = (self.headers.get("X-Docora-App-Id"),
                       payload["repository"]["repository_id"], payload["file"]["path"])
                if action == "delete":
                    receiver.files.pop(key, None)
                    return True
                try:
                    with receiver.lock:
                        done = receiver.reassembler.feed(payload)
                except Violation as exc:
                    receiver.violations.append(f"{action}: {exc}")
                    self._answer(400)
                    return False
                if done is not None:
                    receiver.files[key] = done[1]
                return True

            def _answer(self, status):
                self.send_response(status)
                if status in (429, 503) and receiver.retry_after is not None:
                    self.send_header("Retry-After", str(receiver.retry_after))
                for name, value in receiver.answer_headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(receiver.answer_body)))
                self.end_headers()
                self.wfile.write(receiver.answer_body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that timed out and hung up: nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def actions(self):
        return sorted((action, payload["file"]["path"]) for action, payload in self.requests
                      if "file" in payload and ("chunk" not in payload["file"]
                                                or payload["file"]["chunk"]["index"] == 0))

    def close(self):
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
