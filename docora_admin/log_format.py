"""One log line per message, whatever a client put in it.

A path, an id or a remote app's error text ends up in log messages. A CR/LF in them (`%0a` in a
URL) would start a forged line that looks like ours; a lone surrogate would make the stream
handler fail. Every handler of the root logger therefore formats through OneLineFormatter, which
escapes control characters in the message. Tracebacks, added after the message, keep their lines.
"""
import logging
import re
import threading

# C0 and C1 controls, DEL, the Unicode line/paragraph separators (some log viewers break lines
# there) and lone surrogates (not text at all).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_install_lock = threading.Lock()


def _escape_one(match):
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_control_characters(text):
    """`text` with every control character written as a visible escape (`\\n`, `\\x00`, …)."""
    return _CONTROL.sub(_escape_one, text)


class OneLineFormatter(logging.Formatter):
    """Formats with `inner` (any formatter), after escaping control characters in the message.

    Wrapping rather than replacing keeps each handler's own format (huey's, gunicorn's, a
    test runner's)."""

    def __init__(self, inner=None):
        super().__init__()
        self.inner = inner or logging.Formatter(logging.BASIC_FORMAT)

    def format(self, record):
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: let the inner formatter raise, logging reports it
            return self.inner.format(record)
        escaped = escape_control_characters(message)
        if escaped == message:
            return self.inner.format(record)
        # Other handlers see the same record: change it only for this call.
        msg, args = record.msg, record.args
        record.msg, record.args = escaped, None
        try:
            return self.inner.format(record)
        finally:
            record.msg, record.args = msg, args


def install(level=logging.INFO, logger=None):
    """Make every handler of `logger` (the root logger by default) write one line per message.
    With no handler yet, add one on stderr at `level` (what logging.basicConfig would do). Safe
    to call again."""
    root = logger or logging.getLogger()
    with _install_lock:
        if not root.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(OneLineFormatter())
            root.addHandler(handler)
            root.setLevel(level)
        for handler in root.handlers:
            if not isinstance(handler.formatter, OneLineFormatter):
                handler.setFormatter(OneLineFormatter(handler.formatter or logging.Formatter()))
