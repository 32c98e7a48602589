"""What a client app is sent, byte for byte (../shared/DOCORA_CONTRACT.md §1): compact JSON
bodies in the contract's key order (encode_body), ISO 8601 timestamps, the file bodies of a
create or update (whole, or base64 chunks cut every 524,288 characters of the whole file's
base64, no body over 1 MiB), the delete body, and X-Docora-Delivery-Id (delivery_id).
webhook_client.py signs and sends them."""
import base64
import hashlib
import json
import time
import uuid

from . import file_scan
from .sized_lru import SizedLRU

BINARY_CHUNK_THRESHOLD = 1 << 20  # a binary file over 1 MiB always goes in chunks
BODY_LIMIT = 1 << 20  # no request body over 1 MiB (a default Fastify client refuses more)
CHUNK_CHARS = 512 << 10  # base64 characters per chunk: the contract's cut
CHUNK_BYTES = CHUNK_CHARS // 4 * 3  # the file's bytes whose base64 is one chunk


def iso_timestamp(epoch_seconds=None):
    """`epoch_seconds` (default: now) as JavaScript's Date.prototype.toISOString() writes it,
    UTC with milliseconds and `Z` (2025-01-11T12:00:00.000Z): the contract's `timestamp`."""
    if epoch_seconds is None:
        epoch_seconds = time.time()
    millis = int(epoch_seconds * 1000)
    second, milli = divmod(millis, 1000)
    # strftime and gmtime cost more than the rest of a body's envelope: the second's text is
    # made once per second (every body of that second shares it).
    cached = _second_text
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _set_second_text(cached)
    return f"{cached[1]}.{milli:03d}Z"


_second_text = (None, "")


def _set_second_text(cached):
    global _second_text
    _second_text = cached  # one tuple, swapped whole: threads read it without a lock


def _json(value):
    if type(value) is str and value.isascii() and value.isprintable() \
            and '"' not in value and "\\" not in value:
        return f'"{value}"'  # what json.dumps gives for it (shas, ids), at a tenth of the cost
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_body(payload):
    """A request's body: compact JSON, UTF-8, in the payload's key order. What a client's
    JSON.stringify(JSON.parse(body)) gives back byte for byte (the signature's rule): compact
    separators, non-ASCII as itself, control characters escaped as JavaScript does."""
    return _json(payload).encode()


def delivery_id(app_id, repository_id, action, path, sha, commit_sha):
    """X-Docora-Delivery-Id: a dashed UUID naming one version of one file sent to one app
    (app, repository, event, path, the file's sha, the commit it was sent for), the same on
    every resend of it, chunks included (they differ by chunk.index).

    It is uuid.uuid5 of that name (RFC 4122 version 5) made here in one hash and one format:
    the uuid module's objects cost a tenth of a delivery's Python time."""
    digest = hashlib.sha1(_DELIVERY_NAMESPACE_BYTES + "\0".join(
        (app_id, repository_id, action, path, sha, commit_sha)).encode()).digest()
    # Version 5 in the top nibble of byte 6, the RFC 4122 variant in the top bits of byte 8.
    value = (int.from_bytes(digest[:16], "big") & _VERSION_CLEAR) | _VERSION_5
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_DELIVERY_NAMESPACE = uuid.UUID("6f1c4a52-2d1b-4c53-9a57-8d0e3b7c9e10")
_DELIVERY_NAMESPACE_BYTES = _DELIVERY_NAMESPACE.bytes
_VERSION_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_5 = (5 << 76) | (0x8000 << 48)


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
    """The body of a delete: `file` is {path, sha} with the sha the app was last delivered.
    `repository` as file_bodies takes it."""
    return b"".join((_head(repository), encode_body({"path": path, "sha": last_sha}),
                     _tail(commit_sha, None)))


def file_bodies(repository, commit_sha, path, sha, data=None, previous_sha=None, entry=None):
    """The request bodies of a create (or of an update: `previous_sha`, the sha the app has),
    from the file's bytes `data` or from its cached_entry() `entry`, to be sent in order, each
    acknowledged before the next. `repository` is the body's repository object, or its
    encode_body() bytes (a link's files share it: encoded once).

    Keys as the contract orders them: repository, file, [previous_sha], commit_sha, timestamp.
    One body when it fits in BODY_LIMIT and the file is not a binary over 1 MiB; else the
    file goes as base64 chunks: the base64 string of the whole file cut every CHUNK_CHARS
    characters, file.chunk = {id, index, total}. A text file too large for one body goes that
    way too (the original sends it whole, and a client's default 1 MiB limit refuses it)."""
    head = _head(repository)
    if entry is None:
        content, encoding = file_scan.encode(data)
        if encoding == "base64" and len(data) > BINARY_CHUNK_THRESHOLD:
            yield from _chunk_bodies(head, commit_sha, path, sha, data, previous_sha)
            return
        entry = _json(_file_entry(path, sha, data, content, encoding)).encode()
        if len(entry) <= BODY_LIMIT - ENVELOPE_RESERVE:
            _entries.put((path, sha), entry)
    body = b"".join((head, entry, _tail(commit_sha, previous_sha)))  # one copy of the entry
    if len(body) <= BODY_LIMIT:
        yield body
        return
    if data is None:  # a cached entry whose envelope left it no room: rebuild the bytes
        data = _data_of(entry)
    yield from _chunk_bodies(head, commit_sha, path, sha, data, previous_sha)


def _head(repository):
    encoded = repository if isinstance(repository, bytes) else encode_body(repository)
    return b'{"repository":' + encoded + b',"file":'


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
