"""The failed list's controls in Chromium: column headers sort (again to reverse) and the URL
keeps it; a filter applies when chosen, without pressing Apply; the list says how fresh it is
and refreshes quietly. A web server alone (the kept plain_web of tests/browser_session.py)."""
import urllib.parse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.test_browser_smoke import log_in, wait

pytestmark = pytest.mark.browser


@pytest.fixture
def servers(plain_web):
    return plain_web


def _args(driver):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(driver.current_url).query))


def _app_column(driver):
    # One script call: htmx may swap the table between two Selenium calls.
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#failed-table tbody tr td:nth-child(2)'))"
        ".map(cell => cell.innerText.trim());")


def test_headers_sort_and_reverse(browser, seed):
    for name in ("Beta", "Alpha", "Gamma"):
        seed.failed_links(seed.app(name=name), 1)
    log_in(browser)
    browser.find_element(By.ID, "sort-app_name").click()
    wait(browser).until(lambda d: _args(d).get("sort_by") == "app_name")
    assert _args(browser)["sort_order"] == "asc"
    assert _app_column(browser) == ["Alpha", "Beta", "Gamma"]
    header = browser.find_element(By.CSS_SELECTOR, "th[aria-sort]")
    assert header.get_attribute("aria-sort") == "ascending"
    browser.find_element(By.ID, "sort-app_name").click()  # again: reversed
    wait(browser).until(lambda d: _args(d).get("sort_order") == "desc")
    assert _app_column(browser) == ["Gamma", "Beta", "Alpha"]
    # The state lives in the URL: a reload (or a shared link) shows the same order.
    browser.refresh()
    assert _app_column(browser) == ["Gamma", "Beta", "Alpha"]


def test_filter_applies_on_change_and_keeps_the_sort(browser, seed):
    wanted = seed.app(name="Wanted")
    seed.failed_links(wanted, 2)
    seed.failed_links(seed.app(name="Other"), 3)
    log_in(browser, "/admin/notifications?sort_by=app_name&sort_order=asc")
    Select(browser.find_element(By.NAME, "app_id")).select_by_value(wanted)
    wait(browser).until(lambda d: _args(d).get("app_id") == wanted)  # no Apply pressed
    assert _args(browser)["sort_by"] == "app_name"
    assert set(_app_column(browser)) == {"Wanted"} and len(_app_column(browser)) == 2
    # The export offered is the filtered one.
    export = browser.find_element(By.ID, "export-csv").get_attribute("href")
    assert f"app_id={wanted}" in export and "sort_by=app_name" in export
    search = browser.find_element(By.NAME, "search")
    search.send_keys("no-such-thing\n")
    wait(browser).until(lambda d: _args(d).get("search") == "no-such-thing")
    assert browser.find_elements(By.ID, "empty-state")


def test_freshness_line_counts_and_refresh_works(browser, seed):
    seed.failed_links(seed.app(name="Fresh"), 1)
    log_in(browser)
    age = browser.find_element(By.CSS_SELECTOR, "#failed-list [data-age]")
    wait(browser, 10).until(lambda d: "s ago" in d.find_element(
        By.CSS_SELECTOR, "#failed-list [data-age]").text)
    seed.failed_links(seed.app(name="Newer"), 1)
    browser.find_element(By.CSS_SELECTOR, "#failed-list [data-refresh]").click()
    wait(browser).until(lambda d: len(_app_column(d)) == 2)  # quietly, no page load
    # The count in the heading came along in the same response.
    wait(browser).until(lambda d: d.execute_script(
        "return document.getElementById('failed-total').innerText") == "2")
    assert "just now" in browser.find_element(By.CSS_SELECTOR,
                                              "#failed-list [data-age]").text
    assert age is not None


def test_rows_open_their_page_but_controls_keep_their_meaning(browser, seed):
    app_id, repository_id = seed.link(seed.app(name="Clicky"), seed.repo())
    log_in(browser)
    row = f"#link-{app_id}-{repository_id}"
    browser.find_element(By.CSS_SELECTOR, f"{row} .row-select").click()  # a control: no move
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .row-select").is_selected()
    assert urllib.parse.urlsplit(browser.current_url).path == "/admin/notifications"
    browser.find_element(By.CSS_SELECTOR, f"{row} .error-cell").click()  # anywhere else: opens
    wait(browser).until(lambda d: urllib.parse.urlsplit(d.current_url).path
                        == f"/admin/apps/{app_id}/links/{repository_id}")

    browser.get(f"{browser.base_url}/admin/apps")
    browser.find_element(By.CSS_SELECTOR, "tr[data-href] code").click()  # its base URL cell
    wait(browser).until(lambda d: urllib.parse.urlsplit(d.current_url).path
                        == f"/admin/apps/{app_id}")
