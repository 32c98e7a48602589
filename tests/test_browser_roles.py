"""Roles in a real browser: a viewer sees no action, an operator's retry shows up in the audit
trail under their name. Same servers and helpers as test_browser_smoke."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.accounts_helpers import PASSWORD, make_account
from tests.test_browser_smoke import attribute, offline_repo, seed_failed, wait

pytestmark = pytest.mark.browser

ACTIONS = ".retry-button, .row-select, #select-page, #retry-selected-button, " \
          "#bulk-retry-button, #bulk-confirm-button, #bulk-cancel-button, #link-retry-button, " \
          "#link-retry-now-button, .retry-now-button, #retry-failed-again-button, " \
          "#app-pause-button, #app-resume-button, #app-close-circuit-button, #app-limits-form, " \
          "#app-resync-button, #link-resync-button, #bulk-pause-button, #bulk-resume-button, " \
          "[hx-post]"


def log_in_as(driver, username, next_path="/admin/notifications"):
    driver.get(f"{driver.base_url}{next_path}")
    wait(driver).until(EC.url_contains("/admin/login"))
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver).until(lambda d: "/admin/login" not in d.current_url
                       and d.execute_script("return document.readyState") == "complete")


def test_a_viewer_sees_every_page_and_no_action(browser, seed):
    app_id = seed_failed(seed, 3, app_name="Viewer App")
    make_account("viewer", "vera")
    log_in_as(browser, "vera")
    assert "vera (viewer)" in browser.find_element(By.ID, "who").text
    assert "Viewer App" in browser.find_element(By.ID, "failed-table").text
    assert "cannot retry" in browser.find_element(By.ID, "bulk-viewer-note").text
    repository_id = browser.find_element(By.CSS_SELECTOR, "#failed-table a.repo") \
        .get_attribute("href").rsplit("/", 1)[1]
    for path in ("/admin/notifications", f"/admin/apps/{app_id}",
                 f"/admin/apps/{app_id}/links/{repository_id}", "/admin/operations",
                 "/admin/audit"):
        browser.get(f"{browser.base_url}{path}")
        wait(browser).until(lambda d: d.execute_script("return document.readyState")
                            == "complete")
        assert browser.find_elements(By.CSS_SELECTOR, ACTIONS) == [], path
        assert browser.find_elements(By.ID, "nav-accounts") == [], path
    browser.get(f"{browser.base_url}/admin/accounts/")
    assert "needs the admin role" in browser.find_element(By.TAG_NAME, "main").text


def test_an_operator_retries_and_the_audit_page_names_them(browser, seed):
    app_id = seed.app("Operated")
    link = seed.link(app_id, offline_repo(seed, "ops", "retry-me"))
    make_account("operator", "otto")
    log_in_as(browser, "otto")
    row_id = f"link-{link[0]}-{link[1]}"
    browser.find_element(By.CSS_SELECTOR, f"#{row_id} .retry-button").click()
    wait(browser).until(lambda d: "followed-row" in (attribute(d, row_id, "class") or ""))
    browser.find_element(By.LINK_TEXT, "Audit").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "audit-table")))
    row = browser.find_element(By.CSS_SELECTOR, "#audit-table tr[data-action='retry.one']")
    assert row.find_element(By.CSS_SELECTOR, ".audit-actor").text == "otto"
    assert row.find_element(By.CSS_SELECTOR, ".audit-target").text == f"{link[0]}/{link[1]}"
    # The filter by actor keeps it; by another actor it is gone.
    browser.get(f"{browser.base_url}/admin/audit?actor=otto&action=retry")
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-action='retry.one']")
    browser.get(f"{browser.base_url}/admin/audit?actor=someone-else")
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-action='retry.one']") == []
