"""Signed webhook POSTs to a client app, in the Docora protocol.

Headers: X-Docora-App-Id, X-Docora-Timestamp (unix s) and
X-Docora-Signature: sha256=<hex HMAC-SHA256(client_auth_key, f"{ts}.{body}")>, body being the
exact bytes sent; on file requests also X-Docora-Delivery-Id (ours, unsigned: see delivery_id).
Bodies follow ../shared/DOCORA_CONTRACT.md §1 and are built in payloads.py.

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
connection and threw it away: ~1,400 new connections for 20,000 POSTs from 8 workers). A link's
client keeps the handle each of its threads took until the link is done (keep_handles), and
what its requests share (the app id header, the URLs, the key's bytes) is made once.

No request reaches an internal address (SSRF): unless ALLOW_PRIVATE_WEBHOOKS is set, curl opens
each connection through _AddressGuard, which sees the address curl is about to connect to, after
DNS, and refuses a private one (webhook_address.address_problem); the request then fails with
that refusal as its error. Checking the address curl connects to, not a lookup of our own, leaves
no time for a second DNS answer to swap one in. A kept-alive connection was checked when opened,
so reuse costs nothing; there is no proxy or redirect that could lead elsewhere.

For the attempt inspector (exchange.py) each request leaves an Exchange: references to what was
sent and received, the answer's body kept only up to ATTEMPT_EXCERPT_BYTES. `last` holds the
client's latest; a DeliveryError carries its own as `exchange`.
"""
import errno
import hmac
import socket
import ssl
import threading
import time
from collections import OrderedDict
from urllib.parse import urlsplit

import pycurl

from ... import runtime, webhook_address
from .exchange import Answer, BodyExcerpt, Exchange
from .payloads import encode_body

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

    def __init__(self, message, http_status=None, headers=None, exchange=None):
        super().__init__(message)
        self.http_status = http_status
        self.headers = headers
        self.exchange = exchange  # exchange.Exchange: the request and its answer, if any

    @property
    def retry_after(self):
        """The Retry-After header of a 429 or 503 answer, as sent (None otherwise)."""
        if self.http_status in (429, 503) and self.headers is not None:
            return self.headers.get("Retry-After")
        return None


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
    # The answer's body: only its first bytes are kept, for the attempt inspector.
    handle.body = BodyExcerpt()
    handle.setopt(pycurl.WRITEFUNCTION, handle.body)
    # The answer's header lines, cleared before each request (set once: a setopt per request).
    handle.header_lines = []
    handle.setopt(pycurl.HEADERFUNCTION, handle.header_lines.append)
    return handle


class WebhookClient:
    """Signed POSTs to one app. `keep_handles`: each thread keeps the handle (and so the
    connection) it took for its first request until close(), rather than taking one from the
    process's idle handles and giving it back around every request."""

    def __init__(self, base_url, app_id, auth_key, timeout, limiter=None, keep_handles=False):
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
        # What every request of this client sends the same, made once.
        self._key = auth_key.encode()
        self._app_header = f"X-Docora-App-Id: {app_id}"
        self._urls = {}  # action → URL
        self._held = {} if keep_handles else None  # thread id → its handle, until close()
        self._excerpt = settings.attempt_excerpt_bytes
        self.last = None  # exchange.Exchange of the latest request answered

    def post(self, action, payload, delivery_id=None):
        """POST {base_url}/{action} with `payload` (a dict, or its encode_body bytes), signed,
        with X-Docora-Delivery-Id when `delivery_id` is given; return the app's Answer (status,
        headers) when it is 2xx, else raise DeliveryError."""
        body = payload if isinstance(payload, bytes) else encode_body(payload)
        if self.limiter is not None:
            self.limiter.turn()
        return self._send(action, body, delivery_id)

    def close(self):
        """Give the handles this client kept back to the process's idle handles."""
        if self._held:
            with self._lock:
                held, self._held = list(self._held.values()), {}
            for handle in held:
                _handles.give(self._host, self.timeout, self._guarded, handle, self._kept)

    def _handle(self):
        if self._held is not None:
            handle = self._held.pop(threading.get_ident(), None)
            if handle is not None:
                return handle
        return _handles.take(self._host, self.timeout, self._guarded)

    def _done_with(self, handle):
        if self._held is not None:
            self._held[threading.get_ident()] = handle
        else:
            _handles.give(self._host, self.timeout, self._guarded, handle, self._kept)

    def _send(self, action, body, delivery_id):
        # Signed when it goes (after any wait for the app's turn), so the timestamp is fresh.
        timestamp = str(int(time.time()))
        signature = hmac.digest(self._key, f"{timestamp}.".encode() + body, "sha256").hex()
        headers = ["Content-Type: application/json", self._app_header,
                   f"X-Docora-Timestamp: {timestamp}", f"X-Docora-Signature: sha256={signature}",
                   "Accept:", "Expect:"]  # no curl defaults: Accept: */*, Expect: 100-continue
        if delivery_id is not None:
            headers.append(f"X-Docora-Delivery-Id: {delivery_id}")
        url = self._urls.get(action)
        if url is None:
            url = self._urls[action] = f"{self._url}/{action}"
        handle = self._handle()
        header_lines = handle.header_lines
        header_lines.clear()
        excerpt = handle.body
        excerpt.start(self._excerpt + len(self._key))  # see exchange.stored
        try:
            handle.setopt(pycurl.URL, url)
            handle.setopt(pycurl.HTTPHEADER, headers)
            handle.setopt(pycurl.POSTFIELDSIZE, len(body))
            handle.setopt(pycurl.POSTFIELDS, body)
            handle.perform()
            status = handle.getinfo(pycurl.RESPONSE_CODE)
        except pycurl.error as exc:
            refused = handle.getinfo(pycurl.OS_ERRNO) == errno.ECONNREFUSED
            guard = handle.guard
            handle.close()  # its connection is in an unknown state
            if exc.args[0] == pycurl.E_COULDNT_CONNECT and guard is not None \
                    and guard.refused is not None:  # the address itself was refused
                error = DeliveryError(guard.refused)
            else:
                error = self._error(action, exc.args[0], refused)
            error.exchange = Exchange(url, headers, body, list(header_lines), *excerpt.take(),
                                      self._key, str(error))
            raise error from None
        lines = list(header_lines)
        answer = Answer(status, lines)
        exchange = Exchange(url, headers, body, lines, *excerpt.take(), self._key)
        self._done_with(handle)
        if not 200 <= status < 300:
            raise DeliveryError(f"POST /{action} → HTTP {status}", status, answer.headers,
                                exchange)
        self.last = exchange
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
