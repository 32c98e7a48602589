"""The attempt inspector: the request an attempt sent the app last and the app's answer.

WebhookClient keeps, per request, only references to what it built or received anyway (the URL,
the header lines, the body, the answer's header lines and the first ATTEMPT_EXCERPT_BYTES of its
body): an Exchange, a few attribute stores on the hot path. Once per attempt, when its row is
written (in the statement that ends the attempt: no extra round trip), stored() bounds it and
takes the secrets out; shown() formats a row for the link page and its JSON twin.

Bounds: each body to ATTEMPT_EXCERPT_BYTES (its full size kept beside it), the answer's header
lines to HEADERS_KEPT lines of at most HEADER_LINE_BYTES each. Secrets never reach the row: no
header named in SECRET_HEADERS keeps its value, the app's client key is replaced wherever it
appears, and URL credentials are scrubbed (redact.py). The signature header is kept: it is an
HMAC, and what an operator compares with what the app computed.
"""
import base64
import re

from urllib3 import HTTPHeaderDict

from ... import redact, runtime

HEADERS_KEPT = 64
HEADER_LINE_BYTES = 1024
REDACTED = "[redacted]"
# Headers whose values are credentials, in either direction (lower case).
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "x-auth-token", "x-access-token", "x-docora-client-key", "x-docora-token"})
# curl option lines that only suppress a default header: nothing of them is sent.
_UNSENT = ("Accept:", "Expect:")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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


class Exchange:
    """One request and what came back: references only (formatted when the attempt is logged).
    `answer_lines` are the answer's raw header lines (status line first), `body_parts` the
    first bytes of its body and `body_size` all it received; `error` is the transport error
    when no answer came (timeout, TLS, connection refused)."""

    __slots__ = ("url", "headers", "body", "answer_lines", "body_parts", "body_size", "error",
                 "key")

    def __init__(self, url, headers, body, answer_lines, body_parts, body_size, key,
                 error=None):
        self.url, self.headers, self.body = url, headers, body
        self.answer_lines, self.body_parts, self.body_size = answer_lines, body_parts, body_size
        self.key, self.error = key, error


class BodyExcerpt:
    """A curl WRITEFUNCTION that keeps the first `limit` bytes of an answer's body and counts
    the rest (the body itself is not used; memory stays bounded whatever the app sends)."""

    __slots__ = ("parts", "kept", "size", "limit")

    def __init__(self):
        self.parts, self.kept, self.size, self.limit = [], 0, 0, 0

    def start(self, limit):
        """Empty, keeping up to `limit` bytes of the next answer."""
        self.parts, self.kept, self.size, self.limit = [], 0, 0, limit

    def take(self):
        """(the parts kept, the size received) of the answer, which this no longer holds."""
        taken = self.parts, self.size
        self.parts, self.kept, self.size, self.limit = [], 0, 0, 0
        return taken

    def __call__(self, data):
        self.size += len(data)
        room = self.limit - self.kept
        if room > 0:
            piece = data[:room]
            self.parts.append(piece)
            self.kept += len(piece)


def stored(exchange, limit=None):
    """The attempt-log columns of `exchange` (None: no request was sent), bounded to `limit`
    bytes per body (default ATTEMPT_EXCERPT_BYTES) and with every secret taken out."""
    if limit is None:
        limit = runtime.settings().attempt_excerpt_bytes
    if exchange is None:
        return {"request_sent": False}
    key = exchange.key or b""
    head = [f"POST {redact.scrub(exchange.url)}"]
    for line in exchange.headers:
        if line in _UNSENT:
            continue
        name, _, value = line.partition(":")
        if name.strip().lower() in SECRET_HEADERS:
            line = f"{name}: {REDACTED}"
        head.append(_without_key(line, key))
    response_head = None
    if exchange.answer_lines:
        kept = []
        for raw in exchange.answer_lines[:HEADERS_KEPT + 1]:  # the status line and the headers
            line = raw.rstrip(b"\r\n")[:HEADER_LINE_BYTES]
            if not line:
                continue
            name = line.partition(b":")[0].strip().lower()
            if name.decode("latin-1") in SECRET_HEADERS:
                line = line.partition(b":")[0] + b": " + REDACTED.encode()
            kept.append(_bytes_without_secrets(line, key))
        response_head = b"\n".join(kept)
    body = exchange.body or b""
    answer = b"".join(exchange.body_parts) if exchange.body_parts else b""
    answered = response_head is not None or bool(answer)
    # Cleaned before they are cut to `limit`, over a window one key longer (the client keeps
    # that much of the answer): a key that starts inside the excerpt is replaced whole.
    window = limit + len(key)
    return {
        "request_sent": True, "request_head": "\n".join(head),
        "request_body": _bytes_without_secrets(body[:window], key)[:limit],
        "request_body_size": len(body), "request_body_truncated": len(body) > limit,
        "response_head": response_head,
        "response_body": _bytes_without_secrets(answer[:window], key)[:limit]
        if answered else None,
        "response_body_size": exchange.body_size if answered else None,
        "response_body_truncated": exchange.body_size > limit if answered else None,
        "transport_error": redact.scrub(exchange.error)[:500] if exchange.error else None,
    }


def _without_key(text, key):
    if key and key.decode() in text:
        text = text.replace(key.decode(), REDACTED)
    return text


def _bytes_without_secrets(data, key):
    if key and key in data:
        data = data.replace(key, REDACTED.encode())
    if b"@" in data:  # a URL with credentials in it (latin-1: every byte round-trips)
        data = redact.scrub(data.decode("latin-1")).encode("latin-1")
    return data


def shown(row):
    """(request, response, missing) of an attempt-log row for the page and the JSON twin:
    request and response are dicts, or None with `missing` saying what is known: "not_recorded"
    (logged before the inspector, or by a sweep), "not_sent" (the attempt sent no request) or
    "pruned" (past the details' retention)."""
    sent = row.get("request_sent")
    if not sent:
        return None, None, ("not_sent" if sent is False else "not_recorded")
    if row.get("request_head") is None:
        return None, None, "pruned"
    lines = redact.scrub(row["request_head"]).split("\n")
    method, _, url = lines[0].partition(" ")
    request = {"method": method, "url": url, "headers": _header_pairs(lines[1:]),
               "body": _body(row["request_body"], row["request_body_size"],
                      row["request_body_truncated"])}
    response = {"status": None, "reason": None, "headers": [], "body": None,
                "error": redact.scrub(row.get("transport_error"))}
    if row.get("response_head") is not None:
        answer = [redact.scrub(_text(line)) for line in bytes(row["response_head"]).split(b"\n")]
        status_line = answer[0] if answer and answer[0].startswith("HTTP/") else ""
        parts = status_line.split(" ", 2)
        if len(parts) >= 2 and parts[1].isdigit():
            response["status"] = int(parts[1])
            response["reason"] = parts[2] if len(parts) > 2 else ""
        response["headers"] = _header_pairs(answer[1:] if status_line else answer)
        response["body"] = _body(row["response_body"], row["response_body_size"],
                                 row["response_body_truncated"])
    return request, response, None


def _header_pairs(lines):
    pairs = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:  # another status line (an interim 100 answer), shown as it came
            pairs.append([line.strip(), ""])
            continue
        pairs.append([name.strip(), value.strip()])
    return pairs


def _text(raw):
    # Header lines are bytes: UTF-8 when they decode as such, else Latin-1 (HTTP's old default).
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)


def _body(raw, size, truncated):
    """A body excerpt: UTF-8 text as it is, anything else as base64, with its full size."""
    raw, size, truncated = bytes(raw or b""), size or 0, bool(truncated)
    text = _as_text(raw, truncated)
    body = {"size": size, "excerpt_bytes": len(raw), "truncated": truncated}
    if text is not None:
        body.update(encoding="utf-8", excerpt=redact.scrub(text))
    else:
        body.update(encoding="base64", excerpt=base64.b64encode(raw).decode("ascii"))
    return body


def _as_text(raw, truncated):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # An excerpt may end inside a character: what comes before it is still text.
        if not (truncated and exc.start >= len(raw) - 3 and exc.reason == "unexpected end of data"):
            return None
        text = raw[:exc.start].decode("utf-8")
    if _CONTROL.search(text):
        return None
    return text
