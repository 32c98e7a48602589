"""A Redis outage is a few lines in a consumer's log, not a traceback per poll (issue 23: 2,870
lines in 12 s): one when it starts, one every 30 s while it lasts, one when it is back."""
import time

from docora_admin import outage_log
from tests.private_services import private_redis  # noqa: F401
from tests.processes import start_consumer, wait_for


def test_a_redis_outage_is_one_line_down_and_one_back(tmp_path, app, private_redis):  # noqa: F811
    consumer = start_consumer(tmp_path, workers=4, REDIS_URL=private_redis.url,
                              WATCHDOG_INTERVAL_SECONDS=1)
    try:
        time.sleep(1.5)  # a watchdog tick or so with Redis up
        before = len(consumer.log())
        private_redis.kill()
        time.sleep(6)  # four workers and the scheduler poll every 0.05-0.5 s meanwhile
        private_redis.restart_empty()
        wait_for(lambda: "Redis back after" in consumer.log(), 20,
                 message="the consumer to say Redis is back")
        during = consumer.log()[before:]
    finally:
        consumer.stop()
    lines = [line for line in during.splitlines() if line.strip()]
    print("\n".join(lines))
    assert "Traceback" not in during
    assert sum("Redis unavailable" in line for line in lines) == 1
    assert sum("Redis back after" in line for line in lines) == 1
    assert len(lines) <= 6, lines


def test_the_outage_line_repeats_at_most_every_30_s(caplog):
    outage = outage_log.Outage("Redis")
    error = ConnectionError("refused")
    with caplog.at_level("WARNING", logger="docora_admin.outages"):
        for _ in range(500):
            outage.failed("reading the queue", error)
        outage._reported -= outage_log.REPEAT_S  # as if 30 s had passed
        outage.failed("reading the queue", error)
        outage.ok()
        outage.ok()  # up already: nothing more
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith("Redis unavailable (ConnectionError: refused) while reading")
    assert messages[1].startswith("Redis still unavailable after") and "500 failed" in messages[1]
    assert messages[2].startswith("Redis back after")
