"""LOG_FORMAT=json reaches every line the real processes write: gunicorn's (master and worker)
and huey_consumer's, its start-up lines included; text mode keeps one line per event."""
import json
import urllib.request

from tests.processes import BIN, Process, process_env, start_consumer, start_web, wait_for


def _lines(process):
    return [line for line in process.log().splitlines() if line.strip()]


def test_web_and_worker_log_json_lines(tmp_path, migrated_database, empty_queue):
    web = start_web(tmp_path, LOG_FORMAT="json")
    try:
        urllib.request.urlopen(web.url + "/healthz", timeout=5).read()
    finally:
        web.stop()
    consumer = start_consumer(tmp_path, LOG_FORMAT="json")
    consumer.stop()
    for process in (web, consumer):
        records = [json.loads(line) for line in _lines(process)]  # every line is an object
        assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    messages = [json.loads(line)["message"] for line in _lines(consumer)]
    assert any("consumer started" in message.lower() for message in messages)


def test_worker_text_lines_one_per_event(tmp_path, migrated_database, empty_queue):
    consumer = start_consumer(tmp_path)
    consumer.stop()
    lines = _lines(consumer)
    # huey's list of commands is one message over several lines: now one line.
    assert any("The following commands are available:\\n+ " in line for line in lines)
    assert not any(line.startswith("+ ") for line in lines)


def test_worker_stopped_during_its_start_stops_gracefully(tmp_path, migrated_database,
                                                          empty_queue):
    # huey sets its signal handlers after starting its threads: a SIGINT sent right after its
    # first line used to end the process with a KeyboardInterrupt traceback.
    for round_ in range(4):
        consumer = Process([str(BIN / "huey_consumer"), "app.huey", "-w", "4", "-k", "thread"],
                           process_env(), tmp_path / f"consumer-{round_}.log")
        wait_for(lambda: "consumer started" in consumer.log().lower(), 20, interval=0.005,
                 message="the consumer's first line")
        consumer.stop()
        log = consumer.log()
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
        assert "Consumer exiting." in log, log
