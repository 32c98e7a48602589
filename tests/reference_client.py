"""What a client app does with our requests when it follows Docora's published webhook reference
(../shared/DOCORA_CONTRACT.md §1), written from the contract, never from our own code: check the
signature over the re-serialised body, refuse a stale timestamp, check each body's shape and key
order, reassemble chunks by concatenating the `content` strings and decoding once with a strict
decoder, then check the file's sha. tests/contract_client.js does the same in Node, the stack
most client apps run on; this one is what the Python tests' receiver applies to every request.
"""
import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from datetime import datetime, timezone

MAX_SKEW_S = 300
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")

BODY_KEYS = {
    "create": ["repository", "file", "commit_sha", "timestamp"],
    "update": ["repository", "file", "previous_sha", "commit_sha", "timestamp"],
    "delete": ["repository", "file", "commit_sha", "timestamp"],
    "sync_failed": ["event", "repository", "error", "circuit_breaker", "retry_count",
                    "timestamp"],
}
REPOSITORY_KEYS = ["repository_id", "github_url", "owner", "name"]


class Violation(Exception):
    """The request breaks the contract as a client reads it."""


def stringify(value):
    """JSON.stringify(value) for what JSON.parse gives: compact, non-ASCII as itself. Python
    escapes control characters as JavaScript does (\\b \\f \\n \\r \\t, else \\u00xx)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def verify(body, headers, key, now=None):
    """The reference's check; returns the parsed payload or raises Violation."""
    timestamp = headers.get("X-Docora-Timestamp", "")
    if not timestamp.isdigit():
        raise Violation("X-Docora-Timestamp is not unix seconds")
    if abs((now or time.time()) - int(timestamp)) > MAX_SKEW_S:
        raise Violation("timestamp more than 300 s away")
    payload = json.loads(body, parse_constant=_refuse)
    reserialised = stringify(payload).encode()
    expected = "sha256=" + hmac.new(key.encode(), f"{timestamp}.".encode() + reserialised,
                                    hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("X-Docora-Signature", "")):
        raise Violation("signature does not match the re-serialised body")
    return payload


def _refuse(name):
    raise Violation(f"{name} is not JSON")


def check_shape(action, payload):
    """Key order and field types of one body (raises Violation)."""
    if action not in BODY_KEYS:
        raise Violation(f"unknown event {action}")
    _keys(list(payload), BODY_KEYS[action], action)
    _keys(list(payload["repository"]), REPOSITORY_KEYS, "repository")
    if "@" in payload["repository"]["github_url"].split("/")[2]:
        raise Violation("credentials in github_url")
    _iso(payload["timestamp"], "timestamp")
    if action == "sync_failed":
        return _check_sync_failed(payload)
    file = payload["file"]
    if action == "delete":
        _keys(list(file), ["path", "sha"], "delete file")
    else:
        expected = ["path", "sha", "size", "content"]
        if "content_encoding" in file:
            expected.append("content_encoding")
            if file["content_encoding"] != "base64":
                raise Violation("content_encoding other than base64")
        if "chunk" in file:
            expected.append("chunk")
            if file.get("content_encoding") != "base64":
                raise Violation("a chunk without content_encoding base64")
            _keys(list(file["chunk"]), ["id", "index", "total"], "chunk")
            if not UUID.match(file["chunk"]["id"]):
                raise Violation("chunk id is not a dashed UUID")
        _keys(list(file), expected, "file")
        if not isinstance(file["size"], int) or not isinstance(file["content"], str):
            raise Violation("file size or content of the wrong type")
    if not SHA256.match(file["sha"]):
        raise Violation("file sha is not a SHA-256 hex digest")
    if action == "update" and not SHA256.match(payload["previous_sha"]):
        raise Violation("previous_sha is not a SHA-256 hex digest")


def _check_sync_failed(payload):
    if payload["event"] != "sync_failed":
        raise Violation("event is not sync_failed")
    _keys(list(payload["error"]), ["type", "message"], "error")
    if payload["error"]["type"] != "git_failure":
        raise Violation("error type is not git_failure")
    breaker = payload["circuit_breaker"]
    _keys(list(breaker), ["status", "consecutive_failures", "threshold", "cooldown_until"],
          "circuit_breaker")
    if breaker["status"] != "open":
        raise Violation("circuit_breaker status is not open")
    _iso(breaker["cooldown_until"], "cooldown_until")
    if not all(isinstance(v, int) for v in (breaker["consecutive_failures"],
                                             breaker["threshold"], payload["retry_count"])):
        raise Violation("circuit_breaker counts or retry_count are not integers")


def _keys(found, expected, what):
    if found != expected:
        raise Violation(f"{what} keys {found}, expected {expected}")


def _iso(value, what):
    if not isinstance(value, str) or not ISO.match(value):
        raise Violation(f"{what} {value!r} is not an ISO 8601 string with milliseconds and Z")
    # new Date(value).toISOString() === value on the client
    parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    if parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z" != value:
        raise Violation(f"{what} does not round-trip")


def strict_b64decode(text):
    """Base64 with nothing a lenient decoder would silently drop: no padding inside, no other
    characters, a length that is a multiple of 4."""
    if len(text) % 4 or "=" in text.rstrip("="):
        raise Violation("base64 with padding inside or a length not a multiple of 4")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise Violation(f"invalid base64: {exc}") from None


class Reassembler:
    """Files as a client rebuilds them: whole ones at once, chunked ones once every chunk of an
    id has arrived (concatenated in index order, decoded once). feed() returns (path, bytes)
    when a file is complete, else None; raises Violation when it does not check out."""

    def __init__(self):
        self.pending = {}  # chunk id → {index: content}

    def feed(self, payload):
        file = payload["file"]
        chunk = file.get("chunk")
        if chunk is None:
            data = (strict_b64decode(file["content"]) if file.get("content_encoding")
                    else file["content"].encode("utf-8"))
            return file["path"], self._checked(file, data)
        parts = self.pending.setdefault(chunk["id"], {})
        if chunk["index"] in parts or not 0 <= chunk["index"] < chunk["total"]:
            raise Violation(f"chunk index {chunk['index']} repeated or out of range")
        parts[chunk["index"]] = file["content"]
        if len(parts) < chunk["total"]:
            return None
        del self.pending[chunk["id"]]
        data = strict_b64decode("".join(parts[i] for i in range(chunk["total"])))
        return file["path"], self._checked(file, data)

    @staticmethod
    def _checked(file, data):
        if hashlib.sha256(data).hexdigest() != file["sha"] or len(data) != file["size"]:
            raise Violation(f"{file['path']}: reassembled {len(data)} bytes do not match the "
                            f"sha and size sent")
        return data
