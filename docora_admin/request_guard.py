"""Refusing input no client of ours sends, before any view, query or log line sees it.

Paths, query values and form values must be UTF-8 text without control characters: a NUL makes
PostgreSQL fail mid-query, CR/LF ends up in a redirect header or a log line. Bodies are capped at
MAX_REQUEST_BODY_BYTES (413). JSON bodies are read by json_object_body(), which turns malformed,
too deep or non-text JSON into a 400. Each refusal is one line naming the problem, not the value.
"""
import json
import logging
import re
from urllib.parse import unquote_to_bytes

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ApiError, error_response

log = logging.getLogger(__name__)

# Our JSON bodies are flat objects; anything much deeper is an attack on the parser.
MAX_JSON_DEPTH = 32

# C0 and C1 control characters, DEL and lone surrogates (which only JSON escapes can produce).
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# A parameter name is echoed in the message only when it is short, plain text.
_ECHO_NAME = re.compile(r"[\w.\-\[\]]{1,40}", re.ASCII)


def text_problem(value):
    """What makes `value` unacceptable as text ("a NUL byte", …), or None when it is fine."""
    match = _NOT_TEXT.search(value)
    if match is None:
        return None
    char = match.group()
    if char == "\x00":
        return "a NUL byte"
    if char in "\r\n":
        return "a line break (CR/LF)"
    if "\ud800" <= char <= "\udfff":
        return "a lone surrogate (not valid Unicode text)"
    return f"a control character (U+{ord(char):04X})"


def _named(kind, name):
    return f"{kind} '{name}'" if _ECHO_NAME.fullmatch(name) else f"a {kind}"


def _raw_is_utf8(raw_bytes):
    try:
        raw_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _values_problem(kind, values):
    for name, value in values.items(multi=True):
        if (problem := text_problem(name)) is not None:
            return f"a {kind} name contains {problem}"
        if isinstance(value, str) and (problem := text_problem(value)) is not None:
            return f"{_named(kind, name)} contains {problem}"
    return None


def input_problem():
    """The first thing wrong with this request's path, query string or form, or None."""
    # PEP 3333: PATH_INFO holds the raw bytes as latin-1; werkzeug would decode invalid UTF-8
    # to U+FFFD silently.
    if not _raw_is_utf8(request.environ.get("PATH_INFO", "").encode("latin-1", "replace")):
        return "the path is not valid UTF-8"
    if (problem := text_problem(request.path)) is not None:
        return f"the path contains {problem}"
    if not _raw_is_utf8(unquote_to_bytes(request.query_string.replace(b"+", b" "))):
        return "the query string is not valid UTF-8"
    if request.mimetype == "application/x-www-form-urlencoded" and not _raw_is_utf8(
            unquote_to_bytes(request.get_data(cache=True).replace(b"+", b" "))):
        # werkzeug keeps an invalid byte as the text "%FF": checked on the raw body, as the
        # query string is (the body is within MAX_REQUEST_BODY_BYTES by now).
        return "the form is not valid UTF-8"
    return _values_problem("query parameter", request.args) or _values_problem(
        "form field", request.form)


def too_large_response(exc=None):
    """413 with the limit in the message (for the declared length and for werkzeug's own
    limits met while reading the body)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return error_response(413, f"Request too large: bodies are limited to {limit:,} bytes and "
                               f"{current_app.config['MAX_FORM_PARTS']:,} form fields")


def refuse_hostile_input():
    """before_request: 413 for an oversized body (before reading it), 400 for bad text."""
    if (request.content_length or 0) > current_app.config["MAX_CONTENT_LENGTH"]:
        return too_large_response()
    problem = input_problem()
    if problem is None:
        return None
    log.info("refused %s %s: %s", request.method, request.path[:200], problem)
    return error_response(400, f"Request refused: {problem}")


def _json_problem(body):
    """Walk the parsed body without recursion; name the first non-text string or excess depth."""
    pending = [(body, 1, None)]
    while pending:
        value, depth, field = pending.pop()
        if depth > MAX_JSON_DEPTH:
            return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(value, dict):
            for key, item in value.items():
                if (problem := text_problem(key)) is not None:
                    return f"Request refused: a JSON key contains {problem}"
                pending.append((item, depth + 1, key if depth == 1 else field))
        elif isinstance(value, list):
            pending.extend((item, depth + 1, field) for item in value)
        elif isinstance(value, str) and (problem := text_problem(value)) is not None:
            where = _named("JSON field", field) if field is not None else "a JSON string"
            return f"Request refused: {where} contains {problem}"
    return None


def json_object_body():
    """The request's body as a JSON object (dict); ApiError(400) with a one-line reason when it
    is not UTF-8, not JSON, nested too deep, not an object, or holds strings that are not text."""
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "Request body is not valid UTF-8") from None
    except RecursionError:  # the C parser gives up near the interpreter's recursion limit
        raise ApiError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise ApiError(400, "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    if (problem := _json_problem(body)) is not None:
        raise ApiError(400, problem)
    return body


def init_app(app):
    """Register the guard. Call before auth.init_app, so that hostile input is refused before
    the login rule, CSRF or any view looks at it."""
    app.before_request(refuse_hostile_input)
    app.register_error_handler(RequestEntityTooLarge, too_large_response)
