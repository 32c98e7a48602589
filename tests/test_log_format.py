"""Log messages stay on one line whatever a client sends; tracebacks keep their lines."""
import io
import json
import logging

import pytest

from docora_admin import log_format

pytestmark = pytest.mark.no_services


@pytest.mark.parametrize("text,expected", [
    ("GET /admin/x\nINFO:forged:admin logged in", "GET /admin/x\\nINFO:forged:admin logged in"),
    ("a\r\nb\tc", "a\\r\\nb\\tc"),
    ("nul \x00 del \x7f c1 \x85", "nul \\x00 del \\x7f c1 \\x85"),
    ("line\u2028sep \ud800", "line\\u2028sep \\ud800"),
    ("plain text, é and → stay", "plain text, é and → stay"),
])
def test_escape_control_characters(text, expected):
    assert log_format.escape_control_characters(text) == expected


@pytest.fixture
def root_stream():
    """A handler on the root logger with a plain formatter, as huey_consumer installs one."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream, handler
    root.removeHandler(handler)


def test_installed_handler_writes_one_line_per_message(root_stream):
    stream, handler = root_stream
    log_format.install()
    log_format.install()  # idempotent: the formatter is wrapped once
    assert isinstance(handler.formatter, log_format.OneLineFormatter)
    assert not isinstance(handler.formatter.inner, log_format.OneLineFormatter)
    log = logging.getLogger("docora_admin.test")
    log.warning("refused GET %s", "/admin/apps/\nWARNING:docora_admin.auth:forged")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("unhandled error on %s", "/admin/\r\nx")
    lines = stream.getvalue().splitlines()
    assert lines[0] == ("WARNING:docora_admin.test:refused GET "
                        "/admin/apps/\\nWARNING:docora_admin.auth:forged")
    assert lines[1] == "ERROR:docora_admin.test:unhandled error on /admin/\\r\\nx"
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
    assert not any(line.startswith("WARNING:docora_admin.auth") for line in lines)


def test_the_record_itself_is_left_alone_for_other_handlers(root_stream):
    stream, handler = root_stream
    log_format.install()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "id %s", ("a\nb",), None)
    assert handler.format(record) == "INFO:x:id a\\nb"
    assert (record.msg, record.args, record.getMessage()) == ("id %s", ("a\nb",), "id a\nb")


def test_json_lines_one_object_per_event_traceback_included(root_stream):
    stream, handler = root_stream
    log_format.install(json_lines=True)
    assert isinstance(handler.formatter, log_format.JsonLineFormatter)
    log = logging.getLogger("docora_admin.test")
    log.warning("refused GET %s", "/admin/\nWARNING:forged \ud800")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("unhandled")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "docora_admin.test"
    assert first["message"] == "refused GET /admin/\nWARNING:forged \ud800"
    assert first["time"].endswith("+00:00")
    assert second["message"] == "unhandled"
    assert second["exception"].startswith("Traceback") and "ValueError: boom" in second["exception"]
    log_format.install()  # and back to text
    assert isinstance(handler.formatter, log_format.OneLineFormatter)


@pytest.mark.parametrize("show_debug", [False, True])
def test_huey_per_task_lines_only_at_debug(show_debug):
    from docora_admin.huey_app import PerTaskLinesAtDebug

    task_line = logging.LogRecord("huey", logging.INFO, __file__, 1, "Executing %s", ("t",), None)
    other = logging.LogRecord("huey", logging.INFO, __file__, 1, "Huey consumer started", (), None)
    per_task = PerTaskLinesAtDebug(show_debug)
    assert per_task.filter(task_line) is show_debug
    assert task_line.levelname == "DEBUG"
    assert per_task.filter(other) is True and other.levelname == "INFO"
