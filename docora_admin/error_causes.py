"""The cause of a failed link's error: its text with what differs between two occurrences of the
same failure folded away, so that "timeout after 5 s" and "timeout after 30 s" are one cause
("timeout after N s") while "HTTP 413 Payload Too Large" stays as it reads.

Folded, in this order: URLs (<url>), file-system paths of two or more segments (<path>), host
names of three or more labels ending in a letter (<host>: hooks.acme.example), UUIDs and Docora
ids (<id>), hex hashes of 8 or more characters holding a letter (<hash>), and numbers
(N) except an HTTP status after "HTTP", "status" or "code"; then runs of white space become one
space and the cause is cut at MAX_CAUSE_LENGTH characters.

A pure function. The database holds the same rules as docora_error_cause() (migration
023_failure_causes.sql), which computes `app_repositories.error_cause` whenever a failed link's
error is written, by whichever writer (this console, the original Docora, a script);
tests/test_failure_causes.py proves the two agree.
"""
import re

MAX_ERROR_READ = 1000  # characters of the error text looked at
MAX_CAUSE_LENGTH = 200
UNKNOWN = "Unknown error"  # what a failed link without an error text is grouped under

_FLAGS = re.IGNORECASE | re.ASCII
# (pattern, replacement), applied in order. Written in the common subset of Python's `re` and
# PostgreSQL's regular expressions (no \b, \d or \s; fixed-width look-behinds), so that the
# migration can hold the same list.
RULES = [
    (r"[a-z][a-z0-9+.-]*://[^ \t\r\n'\"<>]+", "<url>"),
    (r"(^|[ \t\r\n'\"(=:])/[^ \t\r\n'\"<>()/]+/[^ \t\r\n'\"<>()]*", r"\1<path>"),
    (r"(^|[^0-9a-z_.-])[a-z0-9-]+(\.[a-z0-9-]+)+\.[a-z][a-z0-9-]*(?![0-9a-z_.-])", r"\1<host>"),
    (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>"),
    (r"(^|[^0-9a-z_])(app|repo|bulk)_[0-9a-f]{8,}", r"\1<id>"),
    (r"(^|[^0-9a-z_])(?=[0-9]*[a-f])[0-9a-f]{8,}(?![0-9a-z_])", r"\1<hash>"),
    (r"(?<![0-9a-z_.])(?<!http )(?<!status )(?<!code )[0-9]+(?:\.[0-9]+)*", "N"),
    (r"[ \t\r\n]+", " "),
]
_COMPILED = [(re.compile(pattern, _FLAGS), replacement) for pattern, replacement in RULES]


def normalise(error):
    """The cause of an error text (UNKNOWN for None or blank)."""
    if error is None:
        return UNKNOWN
    cause = error[:MAX_ERROR_READ]
    for pattern, replacement in _COMPILED:
        cause = pattern.sub(replacement, cause)
    cause = cause.strip()[:MAX_CAUSE_LENGTH].strip()
    return cause or UNKNOWN
