"""Signed webhook POSTs to a client app, in the Docora protocol.

Headers: X-Docora-App-Id, X-Docora-Timestamp (unix s) and
X-Docora-Signature: sha256=<hex HMAC-SHA256(client_auth_key, f"{ts}.{body}")>, body being the
exact bytes sent; on file requests also X-Docora-Delivery-Id (ours, unsigned: see delivery_id).
Bodies follow ../shared/DOCORA_CONTRACT.md §1 (file_bodies, delete_body).

The HTTP client is libcurl, through pycurl (the long-kept binding; a manylinux wheel, nothing to
build). A first sync or a retry-all is thousands of small POSTs from a few worker threads, and
per request urllib3 cost ~420 µs of client CPU, http.client ~210 µs, pycurl ~100 µs
(bench/retry_to_delivered.py's payloads, 8 threads): curl runs the whole request, connect, send
and the answer, in C with the GIL released once, where the Python clients take it back for every
socket call and parse the answer's headers in Python. Every request has a connect timeout and a
total timeout of DELIVERY_TIMEOUT_S, no proxy from the environment, no redirect, http and https
only, certificates checked against the system's CA file, and no retries of its own: the job's
outcome decides.

WebhookClient.post is the one place a request reaches an app: whatever must wrap each request
(a rate limit, Retry-After) wraps that call; it returns the app's answer (status and headers) and
its errors carry them too.

Connections are kept alive and reused: each curl handle keeps the connection to the one app
host it serves, and a consumer process keeps up to DELIVERY_CONNECTIONS_PER_HOST idle handles
per host (with fewer than the threads posting to an app, each request past that opened a new TCP
connection and threw it away: ~1,400 new connections for 20,000 POSTs from 8 workers).

No request reaches an internal address (SSRF): unless ALLOW_PRIVATE_WEBHOOKS is set, curl opens
each connection through _AddressGuard, which sees the address curl is about to connect to, after
DNS, and refuses a private one (webhook_address.address_problem); the request then fails with
that refusal as its error. Checking the address curl connects to, not a lookup of our own, leaves
no time for a second DNS answer to swap one in. A kept-alive connection was checked when opened,
so reuse costs nothing; there is no proxy or redirect that could lead elsewhere.
"""
import base64
import errno
import hmac
import json
import socket
import ssl
import threading
import time
import uuid
from collections import OrderedDict
from urllib.parse import urlsplit

import pycurl
from urllib3 import HTTPHeaderDict

from .. import runtime, webhook_address
from . import file_scan
from .sized_lru import SizedLRU

BINARY_CHUNK_THRESHOLD = 1 << 20  # a binary file over 1 MiB always goes in chunks
BODY_LIMIT = 1 << 20  # no request body over 1 MiB (a default Fastify client refuses more)
CHUNK_CHARS = 512 << 10  # base64 characters per chunk: the contract's cut
CHUNK_BYTES = CHUNK_CHARS // 4 * 3  # the file's bytes whose base64 is one chunk
# App hosts whose idle handles are kept (least recently used beyond that are closed).
HOSTS_KEPT = 200
USER_AGENT = "Docora-Admin"

# Short reasons for curl's errors, as the link's last error shows them.
_CURL_REASONS = {
    pycurl.E_COULDNT_RESOLVE_HOST: "cannot resolve the host",
    pycurl.E_GOT_NOTHING: "the app closed the connection without answering",
    pycurl.E_SEND_ERROR: "connection lost while sending",
    pycurl.E_RECV_ERROR: "connection lost while receiving",
    pycurl.E_SSL_CONNECT_ERROR: "TLS handshake failed",
    pycurl.E_PEER_FAILED_VERIFICATION: "TLS certificate not trusted",
    pycurl.E_UNSUPPORTED_PROTOCOL: "unsupported URL scheme",
    pycurl.E_URL_MALFORMAT: "malformed URL",
}


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


class Answer:
    """The app's answer to one POST: `status`, and `headers` (case-insensitive, parsed when
    asked for: a 2xx answer's headers are seldom read)."""

    def __init__(self, status, header_lines):
        self.status = status
        self._lines = header_lines
        self._headers = None

    @property
    def headers(self):
        if self._headers is None:
            self._headers = HTTPHeaderDict()
            for line in self._lines:
                name, colon, value = line.decode("latin-1").partition(":")
                if colon and not name[:1].isspace():
                    self._headers.add(name.strip(), value.strip())
        return self._headers


def sign(key, timestamp, body):
    # hmac.digest: OpenSSL's one-shot HMAC (an HMAC object costs more than the hashing here).
    return f"sha256={hmac.digest(key.encode(), f'{timestamp}.'.encode() + body, 'sha256').hex()}"


class _Socket(socket.socket):
    """A socket handed to curl, which keeps a duplicate of it: this one closes when dropped,
    without the ResourceWarning of an unclosed socket."""

    __slots__ = ()

    def __del__(self):
        self.close()


class _AddressGuard:
    """A handle's OPENSOCKETFUNCTION: opens the socket curl asks for only when the address it is
    for, resolved from the app's `host`, is not internal; `refused` holds the refusal of the
    last address curl tried (cleared when one is opened), the request's error when curl then
    cannot connect."""

    __slots__ = ("host", "refused")

    def __init__(self, host):
        self.host = host
        self.refused = None

    def __call__(self, purpose, address):
        if address.family in (socket.AF_INET, socket.AF_INET6):
            problem = webhook_address.address_problem(address.addr[0], False, self.host)
        else:
            problem = f"refused: {self.host} resolves to a non-IP address"
        if problem is not None:
            self.refused = problem
            return pycurl.SOCKET_BAD
        self.refused = None
        return _Socket(address.family, address.socktype, address.protocol)


class _Handles:
    """Idle curl handles per app host (scheme, host, port), timeout and whether internal
    addresses are refused, each holding its connection to that host: taken for one request,
    given back after it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle = OrderedDict()  # (host, timeout, guarded) → [handle], least recently used first

    def take(self, host, timeout, guarded):
        """An idle handle to `host` whose requests time out after `timeout` seconds and, when
        `guarded`, whose connections are opened only to public addresses (both part of the
        key: a handle's options are set once, and a connection checked once)."""
        key = (host, timeout, guarded)
        with self.lock:
            handles = self.idle.get(key)
            if handles:
                self.idle.move_to_end(key)
                return handles.pop()
        return _new_handle(timeout, _AddressGuard(host[1]) if guarded else None)

    def give(self, host, timeout, guarded, handle, kept):
        closing = []
        key = (host, timeout, guarded)
        with self.lock:
            handles = self.idle.setdefault(key, [])
            self.idle.move_to_end(key)
            if len(handles) < kept:
                handles.append(handle)
            else:
                closing.append(handle)
            while len(self.idle) > HOSTS_KEPT:
                closing.extend(self.idle.popitem(last=False)[1])
        for extra in closing:
            extra.close()


_handles = _Handles()


def _new_handle(timeout, guard):
    handle = pycurl.Curl()
    handle.guard = guard
    if guard is not None:
        handle.setopt(pycurl.OPENSOCKETFUNCTION, guard)
    handle.setopt(pycurl.CONNECTTIMEOUT_MS, int(min(timeout, 10) * 1000))
    handle.setopt(pycurl.TIMEOUT_MS, int(timeout * 1000))
    handle.setopt(pycurl.NOSIGNAL, 1)  # threads: no SIGALRM for timeouts
    # HTTP/1.1 over TLS too (curl would offer HTTP/2): what the apps have always been sent.
    handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    handle.setopt(pycurl.FOLLOWLOCATION, 0)
    handle.setopt(pycurl.PROXY, "")  # never a proxy from the environment
    handle.setopt(pycurl.TCP_NODELAY, 1)
    handle.setopt(pycurl.USERAGENT, USER_AGENT)
    paths = ssl.get_default_verify_paths()
    if paths.cafile:
        handle.setopt(pycurl.CAINFO, paths.cafile)
    elif paths.capath:
        handle.setopt(pycurl.CAPATH, paths.capath)
    handle.setopt(pycurl.WRITEFUNCTION, len)  # the answer's body is not used
    return handle


class WebhookClient:
    def __init__(self, base_url, app_id, auth_key, timeout, limiter=None):
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter  # services/app_limits.AppLimiter: the app's rate and concurrency
        self.app_id = app_id
        self.auth_key = auth_key
        self.timeout = timeout
        self.bytes_sent = 0  # request bodies acknowledged with 2xx
        self._lock = threading.Lock()  # a link's files may go on several streams at once
        parts = urlsplit(self.base_url)
        self._host = (parts.scheme, parts.hostname, parts.port)
        self._netloc = parts.netloc.rpartition("@")[2]
        # Requests go to the scheme, host, port and path of base_url: credentials or a query in
        # it are not sent.
        self._url = f"{parts.scheme}://{self._netloc}{parts.path}"
        settings = runtime.settings()
        self._kept = settings.delivery_connections_per_host
        self._guarded = not settings.allow_private_webhooks
        if any(c in str(app_id) for c in "\r\n\0"):  # it goes in a header line as it is
            raise ValueError("an app id cannot hold a line break")

    def post(self, action, payload, delivery_id=None):
        """POST {base_url}/{action} with `payload` (a dict, or its encode_body bytes), signed,
        with X-Docora-Delivery-Id when `delivery_id` is given; return the app's Answer (status,
        headers) when it is 2xx, else raise DeliveryError."""
        body = payload if isinstance(payload, bytes) else encode_body(payload)
        if self.limiter is not None:
            self.limiter.turn()
        return self._send(action, body, delivery_id)

    def _send(self, action, body, delivery_id):
        # Signed when it goes (after any wait for the app's turn), so the timestamp is fresh.
        timestamp = str(int(time.time()))
        header_lines = []
        headers = ["Content-Type: application/json", f"X-Docora-App-Id: {self.app_id}",
                   f"X-Docora-Timestamp: {timestamp}",
                   f"X-Docora-Signature: {sign(self.auth_key, timestamp, body)}",
                   "Accept:", "Expect:"]  # no curl defaults: Accept: */*, Expect: 100-continue
        if delivery_id is not None:
            headers.append(f"X-Docora-Delivery-Id: {delivery_id}")
        handle = _handles.take(self._host, self.timeout, self._guarded)
        try:
            handle.setopt(pycurl.URL, f"{self._url}/{action}")
            handle.setopt(pycurl.HTTPHEADER, headers)
            handle.setopt(pycurl.POSTFIELDSIZE, len(body))
            handle.setopt(pycurl.POSTFIELDS, body)
            handle.setopt(pycurl.HEADERFUNCTION, header_lines.append)
            handle.perform()
            status = handle.getinfo(pycurl.RESPONSE_CODE)
        except pycurl.error as exc:
            refused = handle.getinfo(pycurl.OS_ERRNO) == errno.ECONNREFUSED
            guard = handle.guard
            handle.close()  # its connection is in an unknown state
            if exc.args[0] == pycurl.E_COULDNT_CONNECT and guard is not None \
                    and guard.refused is not None:  # the address itself was refused
                raise DeliveryError(guard.refused) from None
            raise self._error(action, exc.args[0], refused) from None
        _handles.give(self._host, self.timeout, self._guarded, handle, self._kept)
        answer = Answer(status, header_lines)
        if not 200 <= status < 300:
            raise DeliveryError(f"POST /{action} → HTTP {status}", status, answer.headers)
        with self._lock:
            self.bytes_sent += len(body)
        return answer

    def _error(self, action, code, refused):
        if code == pycurl.E_COULDNT_CONNECT:
            reason = "connection refused" if refused else "cannot connect"
            return DeliveryError(f"{reason}: {self._netloc}")
        if code == pycurl.E_OPERATION_TIMEDOUT:
            return DeliveryError(f"timeout after {self.timeout:g} s on POST /{action}")
        reason = _CURL_REASONS.get(code, f"curl error {code}")
        return DeliveryError(f"POST /{action} failed: {reason}")


def iso_timestamp(epoch_seconds=None):
    """`epoch_seconds` (default: now) as JavaScript's Date.prototype.toISOString() writes it,
    UTC with milliseconds and `Z` (2025-01-11T12:00:00.000Z): the contract's `timestamp`."""
    if epoch_seconds is None:
        epoch_seconds = time.time()
    millis = int(epoch_seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + \
        f".{millis % 1000:03d}Z"


def _json(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_body(payload):
    """A request's body: compact JSON, UTF-8, in the payload's key order. What a client's
    JSON.stringify(JSON.parse(body)) gives back byte for byte (the signature's rule): compact
    separators, non-ASCII as itself, control characters escaped as JavaScript does."""
    return _json(payload).encode()


def delivery_id(app_id, repository_id, action, path, sha, commit_sha):
    """X-Docora-Delivery-Id: a dashed UUID naming one version of one file sent to one app
    (app, repository, event, path, the file's sha, the commit it was sent for), the same on
    every resend of it, chunks included (they differ by chunk.index)."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE,
                          "\0".join((app_id, repository_id, action, path, sha, commit_sha))))


_DELIVERY_NAMESPACE = uuid.UUID("6f1c4a52-2d1b-4c53-9a57-8d0e3b7c9e10")


# The UTF-8 JSON of files sent whole ({path, sha, size, content[, content_encoding]}), by
# (path, sha): every app of a repository is sent the same files, and encoding one (UTF-8
# checks, base64, JSON escapes) cost more than the rest of building its request. Only entries
# that fit in a body with room to spare for its envelope are kept.
ENTRY_CACHE_BYTES = 64 << 20
ENVELOPE_RESERVE = 64 << 10
_entries = SizedLRU(ENTRY_CACHE_BYTES)


def cached_entry(path, sha):
    """The file's encoded entry if this process has it (the file need not be read)."""
    return _entries.get((path, sha))


def delete_body(repository, commit_sha, path, last_sha):
    """The body of a delete: `file` is {path, sha} with the sha the app was last delivered."""
    return encode_body({"repository": repository, "file": {"path": path, "sha": last_sha},
                        "commit_sha": commit_sha, "timestamp": iso_timestamp()})


def file_bodies(repository, commit_sha, path, sha, data=None, previous_sha=None, entry=None):
    """The request bodies of a create (or of an update: `previous_sha`, the sha the app has),
    from the file's bytes `data` or from its cached_entry() `entry`, to be sent in order, each
    acknowledged before the next.

    Keys as the contract orders them: repository, file, [previous_sha], commit_sha, timestamp.
    One body when it fits in BODY_LIMIT and the file is not a binary over 1 MiB; else the
    file goes as base64 chunks: the base64 string of the whole file cut every CHUNK_CHARS
    characters, file.chunk = {id, index, total}. A text file too large for one body goes that
    way too (the original sends it whole, and a client's default 1 MiB limit refuses it)."""
    head = f'{{"repository":{_json(repository)},"file":'.encode()
    if entry is None:
        content, encoding = file_scan.encode(data)
        if encoding == "base64" and len(data) > BINARY_CHUNK_THRESHOLD:
            yield from _chunk_bodies(head, commit_sha, path, sha, data, previous_sha)
            return
        entry = _json(_file_entry(path, sha, data, content, encoding)).encode()
        if len(entry) <= BODY_LIMIT - ENVELOPE_RESERVE:
            _entries.put((path, sha), entry)
    body = head + entry + _tail(commit_sha, previous_sha)
    if len(body) <= BODY_LIMIT:
        yield body
        return
    if data is None:  # a cached entry whose envelope left it no room: rebuild the bytes
        data = _data_of(entry)
    yield from _chunk_bodies(head, commit_sha, path, sha, data, previous_sha)


def _tail(commit_sha, previous_sha):
    # Made as each body is, so that its timestamp says when it was built.
    previous = "" if previous_sha is None else f',"previous_sha":{_json(previous_sha)}'
    return (f'{previous},"commit_sha":{_json(commit_sha)}'
            f',"timestamp":"{iso_timestamp()}"}}').encode()


def _chunk_bodies(head, commit_sha, path, sha, data, previous_sha):
    # A slice of CHUNK_BYTES (a multiple of 3) encodes to exactly CHUNK_CHARS characters with
    # no padding, so encoding slice by slice gives the whole file's base64 string, cut.
    total = -(-len(data) // CHUNK_BYTES)
    chunk_id = str(uuid.uuid4())
    info = f'{{"path":{_json(path)},"sha":{_json(sha)},"size":{len(data)},"content":"'
    for index in range(total):
        piece = base64.b64encode(data[index * CHUNK_BYTES:(index + 1) * CHUNK_BYTES])
        yield b"".join((head, info.encode(), piece, (
            f'","content_encoding":"base64","chunk":{{"id":"{chunk_id}","index":{index}'
            f',"total":{total}}}}}').encode(), _tail(commit_sha, previous_sha)))


def _data_of(entry):
    file = json.loads(entry)
    if file.get("content_encoding") == "base64":
        return base64.b64decode(file["content"])
    return file["content"].encode()


def _file_entry(path, sha, data, content, encoding):
    entry = {"path": path, "sha": sha, "size": len(data), "content": content}
    if encoding:
        entry["content_encoding"] = encoding
    return entry
