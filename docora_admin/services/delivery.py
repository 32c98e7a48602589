"""Signed webhook POSTs to a client app, in the Docora protocol.

Headers: X-Docora-App-Id, X-Docora-Timestamp (unix s) and
X-Docora-Signature: sha256=<hex HMAC-SHA256(client_auth_key, f"{ts}.{body}")>, body being the
exact bytes sent. urllib3 (a well-kept HTTP client, already under requests and selenium) with a
connect and read timeout on every request and no retries of its own: the job's outcome decides.
"""
import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlsplit

import urllib3

from . import file_scan

CHUNK_THRESHOLD = 1 << 20  # binary files above 1 MiB go in chunks
CHUNK_SIZE = 512 << 10

_http = urllib3.PoolManager(num_pools=50, maxsize=4, retries=False)


class DeliveryError(Exception):
    """A POST was not acknowledged; the message is short and human readable, http_status the
    app's answer when there was one."""

    def __init__(self, message, http_status=None, retry_after=None):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after  # the Retry-After header of a 429 or 503, as sent


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

    def post(self, action, payload):
        """POST {base_url}/{action}; raise DeliveryError unless the app answers 2xx."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        if self.limiter is not None:
            self.limiter.turn()
        self._send(action, body)
        self.bytes_sent += len(body)

    def _send(self, action, body):
        # Signed when it goes (after any wait for the app's turn), so the timestamp is fresh.
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Docora-App-Id": self.app_id,
                   "X-Docora-Timestamp": timestamp,
                   "X-Docora-Signature": sign(self.auth_key, timestamp, body)}
        try:
            response = _http.request("POST", f"{self.base_url}/{action}", body=body,
                                     headers=headers, redirect=False, preload_content=True,
                                     timeout=urllib3.Timeout(connect=min(self.timeout, 10),
                                                             read=self.timeout))
        except urllib3.exceptions.NewConnectionError as exc:
            # Checked first: urllib3 makes it a subclass of ConnectTimeoutError.
            reason = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
            raise DeliveryError(f"{reason}: {urlsplit(self.base_url).netloc}") from None
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError):
            raise DeliveryError(f"timeout after {self.timeout:g} s on POST /{action}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(f"POST /{action} failed: {exc.__class__.__name__}") from None
        if not 200 <= response.status < 300:
            retry_after = (response.headers.get("Retry-After")
                           if response.status in (429, 503) else None)
            raise DeliveryError(f"POST /{action} → HTTP {response.status}", response.status,
                                retry_after)


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
