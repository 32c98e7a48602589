"""One log line per message, whatever a client put in it.

A path, an id or a remote app's error text ends up in log messages. A CR/LF in them (`%0a` in a
URL) would start a forged line that looks like ours; a lone surrogate would make the stream
handler fail. Every handler of the root logger therefore formats through OneLineFormatter, which
escapes control characters in the message. Tracebacks, added after the message, keep their lines.

LOG_FORMAT=json makes every line a JSON object instead (JsonLineFormatter): time, level, logger,
message, and the traceback as one string field, so a machine never has to guess where an event
ends. Either way, one event is one line.
"""
import json
import logging
import re
import threading
from datetime import datetime, timezone

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


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: {"time", "level", "logger", "message"[, "exception"]}. JSON
    escapes every control character, so the message needs no escaping of ours."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii: a lone surrogate in a message becomes \udXXX instead of failing the write.
        return json.dumps(line, ensure_ascii=True)


def install(level=logging.INFO, logger=None, json_lines=False):
    """Make every handler of `logger` (the root logger by default) write one line per message:
    our text format, or JSON objects when `json_lines`. With no handler yet, add one on stderr
    at `level` (what logging.basicConfig would do). Safe to call again."""
    root = logger or logging.getLogger()
    wanted = JsonLineFormatter if json_lines else OneLineFormatter
    with _install_lock:
        if not root.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(wanted())
            root.addHandler(handler)
            root.setLevel(level)
        for handler in root.handlers:
            if isinstance(handler.formatter, wanted):
                continue
            if json_lines:
                handler.setFormatter(JsonLineFormatter())
            else:
                handler.setFormatter(OneLineFormatter(handler.formatter or logging.Formatter()))
