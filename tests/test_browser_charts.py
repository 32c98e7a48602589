"""The Charts page in headless Chromium: the SVG drawn, the window switched (1h → 7d), the app
filter applied, the table twin opened with the same numbers, and no CSP violation on the way.
Only the web server is needed (the attempts are seeded), so no consumer runs: the shared
browser points at the kept plain_web (tests/browser_session.py)."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.test_browser_csp import read_console
from tests.test_browser_smoke import log_in, wait
from tests.test_delivery_stats import attempts, empty_rollup  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def servers(plain_web):
    return plain_web


def test_see_the_charts_switch_window_filter_and_read_the_table(browser, seed):
    alpha, beta = seed.app("Alpha"), seed.app("Beta")
    attempts(alpha, 3, durations_ms=[200, 300, 400], failed=1)
    attempts(beta, 3, durations_ms=[250])
    attempts(beta, 2 * 24, "hour", durations_ms=[500] * 6, failed=2, offset_seconds=1800)
    log_in(browser, "/admin/charts")
    assert browser.find_element(By.ID, "total-delivered").text == "4"
    assert browser.find_element(By.ID, "total-failed").text == "1"
    assert browser.find_element(By.ID, "total-success").text == "80.0 %"
    svg = browser.find_element(By.CSS_SELECTOR, "#chart-volume svg")
    assert svg.get_attribute("role") == "img" and svg.is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-volume rect.bar-delivered")) == 1

    browser.find_element(By.ID, "window-7d").click()
    wait(browser).until(lambda d: "window=7d" in d.current_url)
    assert browser.find_element(By.ID, "window-7d").get_attribute("aria-current") == "true"
    assert browser.find_element(By.ID, "total-delivered").text == "10"
    assert browser.find_element(By.ID, "total-failed").text == "3"

    Select(browser.find_element(By.ID, "charts-app")).select_by_visible_text("Beta")
    browser.find_element(By.CSS_SELECTOR, "#charts-filters button[type=submit]").click()
    wait(browser).until(lambda d: f"app_id={beta}" in d.current_url)
    assert "window=7d" in browser.current_url
    assert browser.find_element(By.TAG_NAME, "h1").text == "Deliveries to Beta"
    assert browser.find_element(By.ID, "total-delivered").text == "7"

    table = browser.find_element(By.ID, "charts-table")
    assert not table.is_displayed()  # inside a closed <details>
    browser.find_element(By.CSS_SELECTOR, "#charts-table-twin summary").click()
    wait(browser).until(lambda d: table.is_displayed())
    # One round trip for the 168 rows' cells (as a screen reader reads them: the visible text).
    rows = browser.execute_script(
        "return [...arguments[0].querySelectorAll('tbody tr')].map(r => "
        "[...r.querySelectorAll('.delivered, .failed, .success')].map(c => c.innerText))",
        table)
    assert len(rows) == 168
    assert [row for row in rows if row[0] != "0"] == [["6", "2", "75.0 %"], ["1", "0", "100.0 %"]]
    total = browser.find_element(By.ID, "charts-table-total")
    assert total.find_element(By.CSS_SELECTOR, ".delivered").text == "7"
    assert read_console(browser, "charts") == []
