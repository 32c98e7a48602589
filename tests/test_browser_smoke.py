"""Smoke tests in headless Chromium against gunicorn, a real Huey consumer, PostgreSQL, Redis
and the test webhook receiver.

The browser and the servers are tests/browser_session.py's (shared with the other browser
tests). Tests whose consumer needs other settings (a short backoff, few attempts) live in
test_browser_outcomes.py and share the helpers below."""
import itertools
import time

import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from docora_admin import db
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, TEST_REDIS_URL
from tests.test_snapshot import Repo
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver():
    """A client app answering 200 to every signed delivery."""
    r = Receiver()
    yield r
    r.close()


def wait(driver, timeout=15):
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def log_in(driver, next_path="/admin/notifications"):
    driver.get(f"{driver.base_url}{next_path}")
    wait(driver).until(EC.url_contains("/admin/login"))
    driver.find_element(By.ID, "username").send_keys(ADMIN_USERNAME)
    driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    # The login page's own URL holds next=<path>: wait until we have left it.
    wait(driver).until(lambda d: "/admin/login" not in d.current_url
                       and next_path in d.current_url
                       and d.execute_script("return document.readyState") == "complete")


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


_unique = itertools.count(1)


def offline_repo(seed, owner, name):
    """A repository whose URL points nowhere: its snapshot job fails at once, offline."""
    return seed.repo(owner, name, url=f"file:///nonexistent/{owner}-{name}-{next(_unique)}")


def local_repo(seed, base, owner, name, files=None):
    """A real git repository on disk (a bare 'remote' under `base`) and its repositories row."""
    base.mkdir(parents=True)
    repo = Repo(base)
    repo.commit(files or {"README.md": f"# {owner}/{name}\n", "docs/guide.md": "Guide ✓\n"})
    return seed.repo(owner, name, url=repo.url)


def receiving_app(seed, receiver, name):
    """An app whose webhooks go to `receiver`, signed with its key."""
    return seed.app(name, base_url=receiver.base_url, auth_key=receiver.auth_key)


def statuses(*links):
    with db.connection() as conn:
        return [conn.execute("SELECT status FROM app_repositories WHERE app_id = %s AND "
                             "repository_id = %s", link).fetchone()["status"] for link in links]


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


def text(driver, element_id):
    """An element's visible text in one script call (None while it is absent)."""
    return driver.execute_script(
        "const el = document.getElementById(arguments[0]); return el ? el.innerText : null;",
        element_id)


def panel_state(driver):
    return attribute(driver, "bulk-panel", "data-state")


def panel_phase(driver):
    return attribute(driver, "bulk-panel", "data-phase")


def start_bulk_retry(driver, still_running=True):
    """Press "Retry all failed", then "Yes, retry"; return the confirm question. Waits until the
    panel shows the new operation (running, unless `still_running` is False: a small one may be
    done before its first poll)."""
    driver.find_element(By.ID, "bulk-retry-button").click()
    confirm = wait(driver).until(EC.element_to_be_clickable((By.ID, "bulk-confirm-button")))
    question = driver.find_element(By.ID, "bulk-confirm-question").text
    confirm.click()
    if still_running:
        wait(driver).until(lambda d: panel_state(d) == "running")
    else:
        wait(driver).until(lambda d: attribute(d, "bulk-panel", "data-operation-id"))
    return question


def test_log_in_through_the_form_and_see_failed_list(browser, seed):
    seed.link(seed.app("Acme Docs"), seed.repo("acme", "handbook"),
              last_error="<script>alert(1)</script>")
    log_in(browser)
    table = browser.find_element(By.ID, "failed-table")
    assert "acme/handbook" in table.text
    assert "<script>alert(1)</script>" in table.text  # shown as text, never run


def test_retry_one_row_follows_it_and_it_leaves_the_failed_list(browser, seed):
    app_id = seed.app("Acme")
    keep = seed.link(app_id, offline_repo(seed, "acme", "keep"), age_minutes=5)
    retried = seed.link(app_id, offline_repo(seed, "acme", "retry-me"))
    log_in(browser)
    row_id = f"link-{retried[0]}-{retried[1]}"
    browser.find_element(By.CSS_SELECTOR, f"#{row_id} .retry-button").click()
    # The row becomes the followed row: it keeps app and repository and follows the attempt,
    # which fails at once (the repository does not exist) and waits for its next try.
    wait(browser).until(lambda d: attribute(d, row_id, "class") == "followed-row state-retrying")
    row = text(browser, row_id)
    assert "Acme" in row and "acme/retry-me" in row
    assert "Retrying — attempt 1 of 5 failed, next attempt at" in row
    assert "git: repository not found" in row
    browser.refresh()
    rows = browser.find_element(By.ID, "failed-table").text
    assert "acme/keep" in rows and "acme/retry-me" not in rows
    assert statuses(keep, retried) == ["failed", "pending_snapshot"]


def test_retry_one_row_reaches_delivered_and_the_count_refreshes(browser, seed, receiver,
                                                                 tmp_path):
    app_id = receiving_app(seed, receiver, "Acme")
    keep = seed.link(app_id, offline_repo(seed, "acme", "keep"), age_minutes=5)
    retried = seed.link(app_id, local_repo(seed, tmp_path / "handbook", "acme", "handbook"))
    log_in(browser)
    assert text(browser, "failed-total") == "2"
    row_id = f"link-{retried[0]}-{retried[1]}"
    browser.find_element(By.CSS_SELECTOR, f"#{row_id} .retry-button").click()
    wait(browser, 30).until(lambda d: attribute(d, row_id, "data-state") == "delivered")
    row = text(browser, row_id)
    assert "Delivered ✓" in row and "acme/handbook" in row and "Acme" in row
    # Once the row resolved, the header count refreshed by itself; nobody reloaded.
    wait(browser).until(lambda d: text(d, "failed-total") == "1")
    assert receiver.bad_signatures == 0
    assert receiver.actions() == [("create", "README.md"), ("create", "docs/guide.md")]
    assert statuses(keep, retried) == ["failed", "synced"]
    # The row links to the link page, whose attempt log shows the delivery.
    browser.find_element(By.CSS_SELECTOR, f"#{row_id} a.repo").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "attempts-table")))
    assert attribute(browser, "link-status", "data-state") == "delivered"
    attempt = browser.find_element(By.CSS_SELECTOR, "#attempts-table tbody tr")
    assert attempt.get_attribute("data-outcome") == "delivered"
    assert attempt.find_elements(By.TAG_NAME, "td")[-1].text == "retry"  # its cause


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
    counters = text(browser, "bulk-counters")
    assert counters.startswith("2,000 / 2,000 processed (2,000 queued, 0 skipped)"), counters
    # Every link was reset, none delivered yet (their repositories do not exist, and the next
    # attempt waits a minute): the panel waits for the deliveries instead of turning green.
    assert panel_phase(browser) == "delivering"
    assert attribute(browser, "bulk-panel", "data-outcome") == "pending"
    assert "Waiting for deliveries" in text(browser, "bulk-panel")
    assert "✓ All delivered" not in text(browser, "bulk-panel")
    # The list below refreshed by itself once the reset phase ended: nothing has given up, and
    # it says the 2,000 are being retried rather than "all delivered".
    wait(browser).until(EC.presence_of_element_located((By.ID, "empty-state")))
    assert "No failed notifications — 2,000 are being retried" in text(browser, "empty-state")
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


def test_retry_selected_rows_retries_only_those(browser, seed):
    app_id = seed.app("Acme")
    links = [seed.link(app_id, offline_repo(seed, "acme", f"docs{n}"), age_minutes=n)
             for n in range(4)]
    chosen, others = [links[1], links[3]], [links[0], links[2]]
    log_in(browser)
    assert not browser.find_element(By.ID, "retry-selected-button").is_enabled()
    for link in chosen:
        browser.find_element(By.CSS_SELECTOR, f"#link-{link[0]}-{link[1]} input.row-select").click()
    button = browser.find_element(By.ID, "retry-selected-button")
    assert button.is_enabled() and text(browser, "selected-count") == "2"
    assert "".join(button.text.split()) == "Retryselected(2)"  # .btn's flex gap spaces it out
    button.click()
    # The panel shows the new operation, covering exactly the two ticked rows.
    wait(browser).until(lambda d: attribute(d, "bulk-panel", "data-operation-id"))
    wait(browser).until(lambda d: panel_state(d) == "completed")
    counters = text(browser, "bulk-counters")
    assert counters.startswith("2 / 2 processed (2 queued, 0 skipped)"), counters
    assert "a selection" in text(browser, "bulk-panel")
    # Only the ticked two left `failed` (reset and queued; their attempts are under way).
    assert "failed" not in statuses(*chosen)
    assert statuses(*others) == ["failed", "failed"]
    operation_id = attribute(browser, "bulk-panel", "data-operation-id")
    with db.connection() as conn:
        op = conn.execute("SELECT scope, total, succeeded FROM bulk_operations WHERE id = %s",
                          (operation_id,)).fetchone()
    assert (op["scope"], op["total"], op["succeeded"]) == ("selection", 2, 2)


def test_second_tab_confirming_during_a_run_attaches_to_it(browser, seed):
    seed_failed(seed, 2000)
    log_in(browser)
    first = browser.current_window_handle
    # The second tab (same admin, same session) gets as far as "Yes, retry" before the run.
    browser.switch_to.new_window("tab")
    second = browser.current_window_handle
    browser.get(f"{browser.base_url}/admin/notifications")
    browser.find_element(By.ID, "bulk-retry-button").click()
    confirm = wait(browser).until(EC.element_to_be_clickable((By.ID, "bulk-confirm-button")))
    # Meanwhile the first tab starts the run.
    browser.switch_to.window(first)
    start_bulk_retry(browser)
    operation_id = attribute(browser, "bulk-panel", "data-operation-id")
    # The second tab's "Yes, retry" is refused (the scope is busy) and shows the running
    # operation's panel instead of an error.
    browser.switch_to.window(second)
    confirm.click()
    wait(browser).until(lambda d: attribute(d, "bulk-panel", "data-operation-id"))
    assert attribute(browser, "bulk-panel", "data-operation-id") == operation_id
    assert panel_state(browser) == "running"
    assert "already running" in text(browser, "bulk-notice")
    assert "Error" not in text(browser, "bulk-panel")
    assert not browser.find_elements(By.ID, "bulk-confirm-button")
    # Its Cancel is live: it stops the run both tabs show.
    browser.find_element(By.ID, "bulk-cancel-button").click()
    wait(browser, 30).until(lambda d: panel_state(d) == "cancelled")
    browser.switch_to.window(first)
    wait(browser, 30).until(lambda d: panel_state(d) == "cancelled")
    assert attribute(browser, "bulk-panel", "data-operation-id") == operation_id
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM bulk_operations").fetchone()["n"] == 1
