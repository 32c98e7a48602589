"""Selenium: retry a group of failures with one cause and watch it deliver, then dismiss a link
that will never succeed and find it in the Dismissed view. Same servers and helpers as
test_browser_smoke.py."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from docora_admin import db
from tests.test_browser_smoke import (  # noqa: F401  (receiver is a fixture)
    attribute, local_repo, log_in, offline_repo, panel_phase, receiver, receiving_app, statuses,
    text, wait)

pytestmark = pytest.mark.browser


def _failed_link(seed, app_id, repository_id, error):
    link = seed.link(app_id, repository_id, last_error=error)
    return link


def test_retry_a_group_then_dismiss_a_link(browser, seed, receiver, tmp_path):
    app_id = receiving_app(seed, receiver, "Cause App")
    timeouts = [_failed_link(seed, app_id, local_repo(seed, tmp_path / f"r{n}", "acme",
                                                      f"docs{n}"), f"timeout after {s} s")
                for n, s in enumerate((5, 30))]
    gone = _failed_link(seed, app_id, offline_repo(seed, "acme", "deleted"),
                        "git: repository not found")
    log_in(browser, "/admin/causes")
    rows = browser.find_elements(By.CSS_SELECTOR, "#causes-table .cause-row")
    assert [(r.get_attribute("data-cause"), r.get_attribute("data-count")) for r in rows] == [
        ("timeout after N s", "2"), ("git: repository not found", "1")]

    # Retry this group: the bulk panel asks for exactly that group, runs it, and settles.
    rows[0].find_element(By.CSS_SELECTOR, ".group-retry-button").click()
    confirm = wait(browser).until(EC.element_to_be_clickable((By.ID, "bulk-confirm-button")))
    assert text(browser, "bulk-confirm-question") == \
        "Retry 2 failed notifications with cause “timeout after N s”?"
    confirm.click()
    wait(browser).until(lambda d: attribute(d, "bulk-panel", "data-operation-id"))
    wait(browser, 60).until(lambda d: panel_phase(d) == "settled")
    assert attribute(browser, "bulk-panel", "data-outcome") == "all-delivered"
    assert statuses(*timeouts) == ["synced", "synced"]
    assert statuses(gone) == ["failed"]
    # The groups refreshed by themselves: only the link that will never succeed is left.
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".cause-row")) == 1)

    # Dismiss it on its link page, with a reason.
    browser.get(f"{browser.base_url}/admin/apps/{gone[0]}/links/{gone[1]}")
    browser.find_element(By.ID, "link-dismiss-reason-input").send_keys("deleted upstream")
    browser.find_element(By.ID, "link-dismiss-button").click()
    wait(browser).until(lambda d: attribute(d, "link-dismissal", "data-dismissed") == "true")
    assert text(browser, "link-dismiss-reason") == "deleted upstream"
    with db.connection() as conn:
        row = conn.execute("SELECT status, dismissed_by FROM app_repositories WHERE app_id = %s "
                           "AND repository_id = %s", gone).fetchone()
    assert row == {"status": "failed", "dismissed_by": "admin"}

    # It is in the Dismissed view, and no longer among the causes.
    browser.find_element(By.ID, "nav-causes").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "causes-empty")))
    browser.find_element(By.ID, "tab-dismissed").click()
    wait(browser).until(lambda d: text(d, "dismissed-total") == "1")
    assert "deleted upstream" in text(browser, "dismissed-table")
