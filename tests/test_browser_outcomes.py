"""Smoke tests of retry outcomes in headless Chromium: a consumer that gives up fast (2 attempts,
1 s backoff), so a bulk retry against a failing app settles within seconds.

Same helpers and browser as test_browser_smoke.py; only the servers differ."""
import pytest
from selenium.webdriver.common.by import By

from docora_admin.huey_app import huey
from tests.processes import start_consumer, start_web
from tests.browser_session import WATCHDOG_INTERVAL_SECONDS
from tests.test_browser_smoke import (  # noqa: F401  (receiver is a fixture)
    attribute, local_repo, log_in, panel_phase, receiver, receiving_app, start_bulk_retry,
    statuses, text, wait)
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser

MAX_RETRY_ATTEMPTS = 2


@pytest.fixture(scope="module")
def servers(tmp_path_factory, migrated_database):
    logs = tmp_path_factory.mktemp("servers")
    huey.flush()
    # The web process words "gave up after N of N" with the same limit as the consumer.
    web = start_web(logs, MAX_RETRY_ATTEMPTS=MAX_RETRY_ATTEMPTS)
    consumer = start_consumer(logs, workers=2, MAX_RETRY_ATTEMPTS=MAX_RETRY_ATTEMPTS,
                              RETRY_BACKOFF_SECONDS=1, DELIVERY_TIMEOUT_S=5,
                              WATCHDOG_INTERVAL_SECONDS=WATCHDOG_INTERVAL_SECONDS,
                              DOCORA_GIT_CACHE=logs / "git-cache")
    yield web
    consumer.stop()
    web.stop()
    huey.flush()


@pytest.fixture
def failing_receiver():
    """A client app that answers 500 to every delivery."""
    r = Receiver()
    r.status = 500
    yield r
    r.close()


def test_bulk_retry_with_a_failing_app_ends_with_the_breakdown(browser, seed, receiver,
                                                               failing_receiver, tmp_path):
    good = receiving_app(seed, receiver, "Good App")
    broken = receiving_app(seed, failing_receiver, "Broken App")
    repos = [local_repo(seed, tmp_path / f"repo{n}", "acme", f"docs{n}") for n in range(3)]
    delivered = [seed.link(good, repo) for repo in repos]
    failing = [seed.link(broken, repo) for repo in repos[:2]]
    log_in(browser)
    assert start_bulk_retry(browser, still_running=False) == "Retry 5 failed notifications?"
    operation_id = attribute(browser, "bulk-panel", "data-operation-id")
    # Reset, delivered or given up after 2 attempts 1 s apart, recounted: settled in seconds.
    wait(browser, 60).until(lambda d: panel_phase(d) == "settled")
    assert attribute(browser, "bulk-panel", "data-operation-id") == operation_id
    assert attribute(browser, "bulk-panel", "data-state") == "completed"
    assert attribute(browser, "bulk-panel", "data-outcome") == "with-failures"
    panel = text(browser, "bulk-panel")
    assert "⚠ Finished with failures" in panel and "✓ All delivered" not in panel
    assert text(browser, "bulk-counters").startswith("5 / 5 processed (5 queued, 0 skipped)")
    assert text(browser, "bulk-deliveries") == \
        "Deliveries: 3 delivered, 2 failed again, 0 in progress"
    assert statuses(*delivered) == ["synced"] * 3
    assert statuses(*failing) == ["failed"] * 2
    assert receiver.bad_signatures == failing_receiver.bad_signatures == 0
    # The failed list refreshed by itself: the two that failed again are back, having given up.
    wait(browser).until(lambda d: text(d, "failed-total") == "2")
    wait(browser).until(lambda d: (text(d, "failed-table") or "").count("Broken App") == 2)
    rows = text(browser, "failed-table")
    assert "Good App" not in rows
    assert rows.count(f"{MAX_RETRY_ATTEMPTS} of {MAX_RETRY_ATTEMPTS}") == 2

    # History shows the same breakdown for that operation.
    browser.find_element(By.LINK_TEXT, "History").click()
    wait(browser).until(lambda d: attribute(d, f"op-{operation_id}", "data-phase") == "settled")
    row = browser.find_element(By.ID, f"op-{operation_id}")
    assert "⚠ Finished with failures" in row.text
    assert row.find_element(By.CSS_SELECTOR, ".deliveries").text == \
        "3 delivered, 2 failed again, 0 in progress"
