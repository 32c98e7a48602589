"""Signed webhook POSTs to a client app, in the Docora protocol.

Headers: X-Docora-App-Id, X-Docora-Timestamp (unix s) and
X-Docora-Signature: sha256=<hex HMAC-SHA256(client_auth_key, f"{ts}.{body}")>, body being the
exact bytes sent. urllib3 (a well-kept HTTP client, already under requests and selenium) with a
connect and read timeout on every request and no retries of its own: the job's outcome decides.

WebhookClient.post is the one place a request reaches an app: whatever must wrap each request
(a rate limit, Retry-After) wraps that call; it returns the app's answer (status and headers) and
its errors carry them too.

Connections are kept alive and reused: one pool per app host, holding up to
DELIVERY_CONNECTIONS_PER_HOST connections, so that every worker thread of a consumer posting to
the same app keeps its connection (with fewer, each request past the pool's size opened a new
TCP connection and threw it away: ~1,400 new connections for 20,000 POSTs from 8 workers).
"""
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from urllib.parse import urlsplit

import urllib3

from .. import runtime
from . import file_scan

CHUNK_THRESHOLD = 1 << 20  # binary files above 1 MiB go in chunks
CHUNK_SIZE = 512 << 10
# App hosts whose pools are kept (least recently used beyond that are closed).
HOSTS_KEPT = 200

_http = None
_http_lock = threading.Lock()


def _pool_manager():
    global _http
    if _http is None:
        with _http_lock:
            if _http is None:
                _http = urllib3.PoolManager(
                    num_pools=HOSTS_KEPT, retries=False,
                    maxsize=runtime.settings().delivery_connections_per_host)
    return _http


class DeliveryError(Exception):
    """A POST was not acknowledged; the message is short and human readable, http_status and
    headers the app's answer when there was one."""

    def __init__(self, message, http_status=None, headers=None):
        super().__init__(message)
        self.http_status = http_status
        self.headers = headers

    @property
    def retry_after(self):
        """The Retry-After header of a 429 or 503 answer, as sent (None otherwise)."""
        if self.http_status in (429, 503) and self.headers is not None:
            return self.headers.get("Retry-After")
        return None


def sign(key, timestamp, body):
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookClient:
    def __init__(self, base_url, app_id, auth_key, timeout, limiter=None):
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter  # services/app_limits.AppLimiter: the app's rate and concurrency
        self.app_id = app_id
        self.auth_key = auth_key
        self.timeout = timeout
        self.bytes_sent = 0  # request bodies acknowledged with 2xx
        self._lock = threading.Lock()  # a link's files may go on several streams at once
        self._pool = None
        self._timeout = urllib3.Timeout(connect=min(timeout, 10), read=timeout)

    def _connections(self):
        # The app's connection pool and path, found once per client rather than per request
        # (PoolManager parses the URL and looks the pool up on every call).
        with self._lock:
            if self._pool is None:
                parts = urllib3.util.parse_url(self.base_url)
                self._path = parts.path or ""
                self._pool = _pool_manager().connection_from_host(parts.host, parts.port,
                                                                  parts.scheme)
            return self._pool, self._path

    def post(self, action, payload):
        """POST {base_url}/{action}, signed; return the app's answer (urllib3 response: status,
        headers) when it is 2xx, else raise DeliveryError."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        if self.limiter is not None:
            self.limiter.turn()
        return self._send(action, body)

    def _send(self, action, body):
        # Signed when it goes (after any wait for the app's turn), so the timestamp is fresh.
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Docora-App-Id": self.app_id,
                   "X-Docora-Timestamp": timestamp,
                   "X-Docora-Signature": sign(self.auth_key, timestamp, body)}
        try:
            pool, path = self._connections()
            response = pool.urlopen(
                "POST", f"{path}/{action}", body=body, headers=headers, redirect=False,
                retries=False, preload_content=True, timeout=self._timeout)
        except urllib3.exceptions.NewConnectionError as exc:
            # Checked first: urllib3 makes it a subclass of ConnectTimeoutError.
            reason = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
            raise DeliveryError(f"{reason}: {urlsplit(self.base_url).netloc}") from None
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError):
            raise DeliveryError(f"timeout after {self.timeout:g} s on POST /{action}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(f"POST /{action} failed: {exc.__class__.__name__}") from None
        if not 200 <= response.status < 300:
            raise DeliveryError(f"POST /{action} → HTTP {response.status}", response.status,
                                response.headers)
        with self._lock:
            self.bytes_sent += len(body)
        return response


def file_payloads(repository, commit_sha, path, sha, data, previous_sha=None):
    """Payloads for one file's bytes: one, or for a binary file over 1 MiB one per 512 KiB chunk
    (file.chunk = {id, index, total}), each to be acknowledged before the next is sent."""
    base = {"repository": repository, "commit_sha": commit_sha, "timestamp": int(time.time())}
    if previous_sha is not None:
        base["previous_sha"] = previous_sha
    info = {"path": path, "sha": sha, "size": len(data)}
    content, encoding = file_scan.encode(data)
    if encoding == "base64" and len(data) > CHUNK_THRESHOLD:
        total = -(-len(data) // CHUNK_SIZE)
        chunk_id = uuid.uuid4().hex
        for index in range(total):
            piece = data[index * CHUNK_SIZE:(index + 1) * CHUNK_SIZE]
            yield {**base, "file": {**info, "content": base64.b64encode(piece).decode(),
                                    "content_encoding": "base64",
                                    "chunk": {"id": chunk_id, "index": index, "total": total}}}
        return
    entry = {**info, "content": content}
    if encoding:
        entry["content_encoding"] = encoding
    yield {**base, "file": entry}
