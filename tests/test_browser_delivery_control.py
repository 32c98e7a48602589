"""Delivery control in headless Chromium: pause an app and resume it; pause and resume a running
bulk retry. Same servers and helpers as test_browser_smoke.py."""
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.test_browser_smoke import (  # noqa: F401  (receiver is a fixture)
    attribute, failed_count, local_repo, log_in, panel_state, receiver, receiving_app,
    seed_failed, start_bulk_retry, statuses, text, wait)

pytestmark = pytest.mark.browser


def test_pause_an_app_see_it_held_and_resume(browser, seed, receiver, tmp_path):
    app_id = receiving_app(seed, receiver, "Pausable App")
    link = seed.link(app_id, local_repo(seed, tmp_path / "repo", "acme", "docs"))
    log_in(browser, f"/admin/apps/{app_id}")
    browser.find_element(By.ID, "app-pause-button").click()
    wait(browser).until(lambda d: attribute(d, "app-delivery", "data-held") == "paused")
    assert "‖ Paused" in text(browser, "app-delivery-title")
    assert "Paused by admin" in text(browser, "app-delivery-state")

    # A retry while paused is held, not attempted.
    row_id = f"link-{link[0]}-{link[1]}"
    browser.find_element(By.CSS_SELECTOR, f"#{row_id} .retry-button").click()
    wait(browser).until(lambda d: "Held" in (text(d, row_id) or ""))
    time.sleep(1.5)
    assert receiver.requests == [] and statuses(link) == ["pending_snapshot"]
    browser.get(f"{browser.base_url}/admin/apps")
    assert "‖ Paused" in browser.find_element(By.CSS_SELECTOR, "table").text

    browser.get(f"{browser.base_url}/admin/apps/{app_id}")
    wait(browser).until(EC.element_to_be_clickable((By.ID, "app-resume-button"))).click()
    wait(browser).until(lambda d: attribute(d, "app-delivery", "data-held") == "none")
    assert "Deliveries resumed: 1 queued" in text(browser, "app-delivery-notice")
    wait(browser, 30).until(lambda d: statuses(link) == ["synced"])
    assert len(receiver.requests) == 2 and receiver.bad_signatures == 0


def test_pause_and_resume_a_running_bulk_retry(browser, seed):
    seed_failed(seed, 2000)
    log_in(browser)
    start_bulk_retry(browser)
    wait(browser).until(EC.element_to_be_clickable((By.ID, "bulk-pause-button"))).click()
    wait(browser, 30).until(lambda d: panel_state(d) == "paused")
    assert "‖ Paused" in text(browser, "bulk-panel-title")
    counters = text(browser, "bulk-counters")
    remaining = failed_count()
    assert 0 < remaining < 2000
    time.sleep(2)  # nothing moves while paused
    assert failed_count() == remaining and text(browser, "bulk-counters") == counters

    browser.find_element(By.ID, "bulk-resume-button").click()
    wait(browser, 60).until(lambda d: panel_state(d) == "completed")
    assert text(browser, "bulk-counters").startswith("2,000 / 2,000 processed (2,000 queued")
    assert failed_count() == 0
