"""The console works under its Content-Security-Policy: headless Chromium logs no CSP violation
while an admin logs in through the form, visits every page, retries a row and runs a bulk retry
(whose panel shows every state of the progress bar, up to "Done" once its deliveries ended).

The smoke tests' helpers; the browser here also keeps its console log. Its own servers give up
on a link after one failed attempt, so the bulk retry's deliveries (to repositories that point
nowhere) end within seconds instead of backing off for minutes, and the panel settles."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.browser_session import run_servers
from tests.test_browser_smoke import (attribute, log_in, panel_state, seed_failed,
                                      start_bulk_retry, wait)

pytestmark = pytest.mark.browser

CSP_MARKERS = ("Content Security Policy", "Refused to")


@pytest.fixture(scope="module")
def servers(tmp_path_factory, migrated_database):
    yield from run_servers(tmp_path_factory.mktemp("csp-servers"), MAX_RETRY_ATTEMPTS=1)


def read_console(driver, where):
    """Move the browser's console entries (reading empties it) into driver.console, tagged with
    the step they came from; return the CSP violations among them."""
    entries = [f"[{where}] {entry['level']}: {entry['message']}"
               for entry in driver.get_log("browser")]
    driver.console.extend(entries)
    return [entry for entry in entries if any(marker in entry for marker in CSP_MARKERS)]


def open_page(driver, path):
    driver.get(f"{driver.base_url}{path}")
    # htmx has run once its config is read: it processed the page (or the CSP stopped it).
    wait(driver).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && !!window.htmx && "
        "htmx.config.allowEval === false"))


def test_violations_are_seen_at_all(browser, seed):
    """The check below would pass vacuously if violations never reached the log: show one."""
    log_in(browser, "/admin/")
    browser.execute_script(
        "document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">inline</p>')")
    wait(browser).until(lambda d: read_console(d, "canary"))


def test_console_works_without_csp_violations(browser, seed):
    app_id = seed_failed(seed, 60, app_name="CSP App")
    violations = []
    log_in(browser, "/admin/")  # through the form
    violations += read_console(browser, "login")
    for path in ("/admin/", "/admin/notifications", "/admin/apps", f"/admin/apps/{app_id}",
                 "/admin/queue", "/admin/operations"):
        open_page(browser, path)
        violations += read_console(browser, path)

    open_page(browser, "/admin/notifications")
    row = browser.find_element(By.CSS_SELECTOR, "#failed-table tbody tr.failed-row")
    row_id = row.get_attribute("id")
    row.find_element(By.CSS_SELECTOR, ".retry-button").click()
    wait(browser).until(lambda d: attribute(d, row_id, "data-state") in (
        "queued", "delivering", "retrying", "failed"))  # the followed row
    violations += read_console(browser, "row retry")

    # The bulk panel from running through its delivery phase to settled: the bar in every state.
    start_bulk_retry(browser)
    operation_id = attribute(browser, "bulk-panel", "data-operation-id")
    violations += read_console(browser, "bulk retry running")
    wait(browser, 60).until(lambda d: panel_state(d) == "completed"
                            and attribute(d, "bulk-panel", "data-phase") == "settled")
    wait(browser).until(EC.element_to_be_clickable((By.ID, "bulk-dismiss-button"))).click()
    wait(browser).until(lambda d: panel_state(d) in ("idle", None))
    violations += read_console(browser, "bulk retry completed")
    repository_id = row_id.removeprefix(f"link-{app_id}-")
    for path in ("/admin/queue", "/admin/operations", f"/admin/operations/{operation_id}",
                 f"/admin/apps/{app_id}/links/{repository_id}",
                 "/admin/notifications?view=in_progress"):
        open_page(browser, path)
        violations += read_console(browser, path)

    assert violations == []
