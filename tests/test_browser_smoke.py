"""Smoke tests in headless Chromium against gunicorn, a real Huey consumer, PostgreSQL and Redis.

On failure each test leaves failure.png (and the page source) in its pytest temp folder."""
import shutil
import time

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from docora_admin import db
from docora_admin.huey_app import huey
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, TEST_REDIS_URL
from tests.processes import start_consumer, start_web

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def servers(tmp_path_factory, migrated_database):
    logs = tmp_path_factory.mktemp("servers")
    huey.flush()
    web = start_web(logs, BULK_CHUNK_SIZE=25)
    consumer = start_consumer(logs, workers=2, BULK_CHUNK_DELAY_MS=150)
    yield web
    consumer.stop()
    web.stop()
    huey.flush()


@pytest.fixture
def browser(request, tmp_path, servers):
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.base_url = servers.url
    yield driver
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        (tmp_path / "failure.html").write_text(driver.page_source)
        print(f"screenshot saved to {tmp_path / 'failure.png'}")
    driver.quit()


def wait(driver, timeout=15):
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def log_in(driver, next_path="/admin/notifications"):
    driver.get(f"{driver.base_url}{next_path}")
    wait(driver).until(EC.url_contains("/admin/login"))
    driver.find_element(By.ID, "username").send_keys(ADMIN_USERNAME)
    driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver).until(EC.url_contains(next_path))


def seed_failed(seed, count, app_name="Smoke App"):
    """`count` failed links whose repositories point nowhere, so jobs fail fast and offline."""
    app_id = seed.app(app_name)
    with db.connection() as conn:
        conn.execute("""
            INSERT INTO repositories (repository_id, github_url, owner, name)
            SELECT 'repo_' || %(app)s || '_' || g, 'file:///nonexistent/' || %(app)s || g,
                   'smoke', 'repo' || g
            FROM generate_series(1, %(n)s) g
        """, {"app": app_id[-8:], "n": count})
        conn.execute("""
            INSERT INTO app_repositories (app_id, repository_id, status, last_error, retry_count,
                                          updated_at)
            SELECT %(app_id)s, 'repo_' || %(app)s || '_' || g, 'failed',
                   'POST /create → HTTP 500', 5, now() - make_interval(secs => g)
            FROM generate_series(1, %(n)s) g
        """, {"app_id": app_id, "app": app_id[-8:], "n": count})
    return app_id


def failed_count():
    with db.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM app_repositories "
                            "WHERE status = 'failed'").fetchone()["n"]


def attribute(driver, element_id, name, selector=None):
    """Read an attribute in one script call: htmx swaps elements under us, and a Selenium
    element handle kept across a swap goes stale."""
    return driver.execute_script(
        "const el = document.getElementById(arguments[0]);"
        "const target = el && arguments[2] ? el.querySelector(arguments[2]) : el;"
        "return target ? target.getAttribute(arguments[1]) : null;",
        element_id, name, selector)


def panel_state(driver):
    return attribute(driver, "bulk-panel", "data-state")


def start_bulk_retry(driver):
    driver.find_element(By.ID, "bulk-retry-button").click()
    confirm = wait(driver).until(EC.element_to_be_clickable((By.ID, "bulk-confirm-button")))
    question = driver.find_element(By.ID, "bulk-confirm-question").text
    confirm.click()
    wait(driver).until(lambda d: panel_state(d) == "running")
    return question


def test_log_in_through_the_form_and_see_failed_list(browser, seed):
    seed.link(seed.app("Acme Docs"), seed.repo("acme", "handbook"),
              last_error="<script>alert(1)</script>")
    log_in(browser)
    table = browser.find_element(By.ID, "failed-table")
    assert "acme/handbook" in table.text
    assert "<script>alert(1)</script>" in table.text  # shown as text, never run


def test_retry_one_row_leaves_the_failed_list(browser, seed):
    app_id = seed.app("Acme")
    keep = seed.link(app_id, seed.repo("acme", "keep"), age_minutes=5)
    retried = seed.link(app_id, seed.repo("acme", "retry-me"))
    log_in(browser)
    row_id = f"link-{retried[0]}-{retried[1]}"
    browser.find_element(By.CSS_SELECTOR, f"#{row_id} .retry-button").click()
    wait(browser).until(lambda d: attribute(d, row_id, "data-state") == "queued")
    browser.refresh()
    rows = browser.find_element(By.ID, "failed-table").text
    assert "acme/keep" in rows and "acme/retry-me" not in rows
    assert seed.link_status(*keep)["status"] == "failed"


def test_retry_all_shows_moving_progress_until_completed(browser, seed):
    seed_failed(seed, 2000)
    log_in(browser)
    question = start_bulk_retry(browser)
    assert question == "Retry 2,000 failed notifications?"
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = panel_state(browser)
        if state == "running":
            value = int(attribute(browser, "bulk-panel", "aria-valuenow", "[role=progressbar]"))
            if not seen or seen[-1] != value:
                seen.append(value)
        elif state == "completed":
            break
        time.sleep(0.2)
    assert panel_state(browser) == "completed"
    assert len([v for v in seen if v > 0]) >= 2, seen  # the bar moved at least twice
    counters = browser.find_element(By.ID, "bulk-counters").text
    assert counters.startswith("2,000 / 2,000 completed (2,000 succeeded, 0 failed, 0 skipped)")
    # The list below refreshed by itself once the operation ended.
    wait(browser).until(EC.presence_of_element_located((By.ID, "empty-state")))
    assert failed_count() == 0


def test_cancel_stops_and_leaves_the_rest_failed(browser, seed):
    seed_failed(seed, 2000)
    log_in(browser)
    start_bulk_retry(browser)
    wait(browser).until(EC.element_to_be_clickable((By.ID, "bulk-cancel-button"))).click()
    wait(browser, 30).until(lambda d: panel_state(d) == "cancelled")
    assert "Cancelled" in browser.find_element(By.ID, "bulk-panel").text
    outcome = browser.find_element(By.ID, "bulk-outcome").text
    remaining = failed_count()
    assert 0 < remaining < 2000
    assert outcome.startswith(f"Cancelled: {remaining:,} notifications not reached stay failed")
    time.sleep(1.5)  # nothing moves after the cancel
    assert failed_count() == remaining


def test_reload_during_a_run_reattaches_the_panel(browser, seed):
    seed_failed(seed, 2000)
    log_in(browser)
    start_bulk_retry(browser)
    operation_id = attribute(browser, "bulk-panel", "data-operation-id")
    browser.refresh()
    wait(browser).until(EC.presence_of_element_located((By.ID, "bulk-panel")))
    assert attribute(browser, "bulk-panel", "data-operation-id") == operation_id
    assert panel_state(browser) in ("running", "completed")
    # Clean up: cancel so the next test starts with an idle queue.
    if panel_state(browser) == "running":
        browser.find_element(By.ID, "bulk-cancel-button").click()
        wait(browser, 30).until(lambda d: panel_state(d) == "cancelled")


def test_expired_session_lands_on_the_login_page(browser, seed):
    app_id, repo = seed.link(seed.app("Acme"), seed.repo("acme", "docs"))
    log_in(browser)
    # The server forgets the session, as it does after an hour idle or a logout elsewhere.
    redis.Redis.from_url(TEST_REDIS_URL).delete(
        *redis.Redis.from_url(TEST_REDIS_URL).keys("docora:session:*"))
    browser.find_element(By.CSS_SELECTOR, f"#link-{app_id}-{repo} .retry-button").click()
    wait(browser).until(EC.url_contains("/admin/login"))
    assert browser.find_element(By.ID, "login-submit")
    assert "next=/admin/notifications" in browser.current_url
    assert seed.link_status(app_id, repo)["status"] == "failed"
