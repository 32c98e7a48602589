"""Every page at a phone's width (390 CSS px, as an iPhone 12-15 shows them): nothing scrolls
sideways, and every link, button and field is within the screen.

PAGES is the list walked: a page added to the console goes there (test_every_page_is_walked
fails until it does). Each entry is (name, path template, logged in?); templates are filled from
the data seeded by `phone_data`.
"""
import os

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from docora_admin import db
from docora_admin.huey_app import huey
from tests.browser_session import CHROMEDRIVER, CHROMIUM, save_failure
from tests.test_browser_smoke import log_in, wait

pytestmark = pytest.mark.browser

PHONE_WIDTH = 390
SCREENSHOTS = os.environ.get("PHONE_SCREENSHOTS")

PAGES = [
    ("login", "/admin/login", False),
    ("login failed", "/admin/login?failed", False),
    ("overview", "/admin/", True),
    ("failed list", "/admin/notifications", True),
    ("failed list, filtered", "/admin/notifications?app_id={app_id}&sort_by=app_name", True),
    ("in progress", "/admin/notifications?view=in_progress", True),
    ("apps", "/admin/apps", True),
    ("onboard an app", "/admin/apps/onboard", True),
    ("app", "/admin/apps/{app_id}", True),
    ("link", "/admin/apps/{app_id}/links/{repository_id}", True),
    ("queue", "/admin/queue", True),
    ("history", "/admin/operations", True),
    ("operation", "/admin/operations/{operation_id}", True),
    ("accounts", "/admin/accounts/", True),
    ("account", "/admin/accounts/admin", True),
    ("your account", "/admin/account/", True),
    ("audit", "/admin/audit", True),
    ("causes", "/admin/causes", True),
    ("dismissed", "/admin/dismissed", True),
    ("charts", "/admin/charts", True),
    ("charts, a week of one app", "/admin/charts?window=7d&app_id={app_id}", True),
    ("alerts", "/admin/alerts", True),
    ("not found", "/admin/no-such-page", True),
]

# Endpoints that answer htmx with a fragment, not a page of their own.
FRAGMENT_ENDPOINTS = {"pages.link_row", "pages.link_status", "pages.bulk_panel"}
# Endpoints the walk reaches through a path above (not by their own name).
COVERED_ELSEWHERE = {"pages.logout"}

LONG_ERROR = ("POST https://hooks.globex-corporation.example/docora/webhooks/v2/create → HTTP "
              "500: upstream_connect_error_or_disconnect/reset_before_headers.reset_reason:"
              "connection_termination_with_a_very_long_unbroken_identifier_0123456789abcdef")


@pytest.fixture
def phone(request, tmp_path, plain_web):
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {
        "width": PHONE_WIDTH, "height": 844, "pixelRatio": 3.0, "touch": True}})
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.base_url = plain_web.url
    yield driver
    save_failure(request, driver, tmp_path)
    driver.quit()


@pytest.fixture
def phone_data(seed, logged_in):
    """A long app name, long unbroken error texts, links in every state, a bulk operation
    (queued, never run: no consumer here) and an attempt in the log."""
    huey.flush()
    app_id = seed.app(name="Globex Corporation Static Site Generator (production, eu-west-1)")
    repos = [seed.repo(owner="globex-corporation-infrastructure",
                       name=f"static-site-generator-templates-{n}") for n in range(3)]
    for repository_id in repos:
        seed.link(app_id, repository_id, last_error=LONG_ERROR)
    seed.link(app_id, seed.repo(), status="pending_snapshot", retry_count=2)
    seed.link(app_id, seed.repo(), status="synced")
    with db.connection() as conn:
        link_id = conn.execute("SELECT id FROM app_repositories WHERE app_id = %s AND "
                               "repository_id = %s", (app_id, repos[0])).fetchone()["id"]
        # With the attempt inspector's request and response (long URL, header and body).
        conn.execute("""
            INSERT INTO delivery_attempts (link_id, app_id, repository_id, attempt, cause,
                started_at, outcome, link_status, error, http_status, request_sent,
                request_head, request_body, request_body_size, request_body_truncated,
                response_head, response_body, response_body_size, response_body_truncated)
            VALUES (%s, %s, %s, 5, 'scheduler', now() - interval '2 s', 'failed', 'failed',
                    %s, 500, true, %s, %s, 70000, true, %s, %s, 3000, false)""",
                     (link_id, app_id, repos[0], LONG_ERROR,
                      "POST https://globex-corporation-static-site-generator.example.com/"
                      "hooks/production/eu-west-1/create\nX-Docora-Signature: sha256=" + "ab" * 32,
                      b'{"repository":' + b"x" * 2000, b"HTTP/1.1 500 Internal Server Error\n"
                      b"X-Very-Long-Header-Name-From-A-Proxy: " + b"v" * 300, b"e" * 2048))
    response = logged_in.post(f"/admin/api/retry/app/{app_id}")
    assert response.status_code == 200, response.get_json()
    yield {"app_id": app_id, "repository_id": repos[0],
           "operation_id": response.get_json()["data"]["operation_id"]}
    huey.flush()


def _save_full_page(driver, path):
    """The whole page, not just the screen (Chrome DevTools' capture beyond the viewport)."""
    import base64

    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True,
                                                             "format": "png"})
    with open(path, "wb") as out:
        out.write(base64.b64decode(shot["data"]))


def _overflow(driver):
    """(document scroll width, viewport width, [interactive elements reaching past it])."""
    return driver.execute_script("""
        const width = Math.min(window.innerWidth, arguments[0]);
        const outside = [];
        for (const el of document.querySelectorAll('a, button, input, select, summary')) {
            const box = el.getBoundingClientRect();
            if (box.width === 0 || box.height === 0) continue;  // not shown
            if (el.closest('.visually-hidden, .skip-link')) continue;
            if (box.right > width + 0.5 || box.left < -0.5) {
                outside.push(el.outerHTML.slice(0, 120) + ' @ ' + Math.round(box.left) + '..'
                             + Math.round(box.right));
            }
        }
        return [document.documentElement.scrollWidth, window.innerWidth, outside];
    """, PHONE_WIDTH)


def test_no_page_scrolls_sideways_at_390_px(phone, phone_data):
    problems = []
    logged_in = False
    for name, template, needs_login in PAGES:
        if needs_login and not logged_in:
            log_in(phone, "/admin/")
            logged_in = True
        path = template.format(**phone_data)
        if name == "login failed":
            phone.get(phone.base_url + "/admin/login")
            phone.find_element(By.ID, "username").send_keys("someone")
            phone.find_element(By.ID, "password").send_keys("wrong password")
            phone.find_element(By.ID, "login-submit").click()
            wait(phone).until(lambda d: d.find_elements(By.ID, "login-error"))
        else:
            phone.get(phone.base_url + path)
            wait(phone).until(lambda d: d.execute_script(
                "return document.readyState") == "complete")
        # A phone browser zooms out to fit a page wider than the screen: innerWidth then
        # grows past 390 too, so both are compared with the phone's width.
        scroll_width, width, outside = _overflow(phone)
        if SCREENSHOTS:  # for a person to look at the pages: PHONE_SCREENSHOTS=<folder>
            _save_full_page(phone, f"{SCREENSHOTS}/{name.replace(' ', '-').replace(',', '')}.png")
        if max(scroll_width, width) > PHONE_WIDTH or outside:
            problems.append(f"{name} ({path}): scrollWidth {scroll_width}, innerWidth {width}")
            problems.extend(f"    {item}" for item in outside[:5])
    assert not problems, "\n".join(problems)


def test_every_page_is_walked(app):
    """A new page must be added to PAGES (or named a fragment above)."""
    walked = set()
    adapter = app.url_map.bind("localhost")
    for _, template, _ in PAGES:
        path = template.format(app_id="app_x", repository_id="repo_x", operation_id="bulk_x")
        try:
            endpoint, _ = adapter.match(path.split("?")[0])
        except Exception:
            continue  # the not-found page
        walked.add(endpoint)
    pages = {rule.endpoint for rule in app.url_map.iter_rules()
             if rule.endpoint.split(".")[0] in ("pages", "accounts", "me", "audit")
             and "GET" in rule.methods and "/api/" not in rule.rule}
    missing = pages - walked - FRAGMENT_ENDPOINTS - COVERED_ELSEWHERE
    assert not missing, f"pages not in PAGES of {__name__}: {sorted(missing)}"


def test_filters_fold_away_on_a_phone_unless_a_filter_is_on(phone, phone_data):
    log_in(phone, "/admin/notifications")
    assert phone.execute_script("return document.getElementById('filters-panel').open") is False
    phone.find_element(By.CSS_SELECTOR, "#filters-panel > summary").click()
    assert phone.find_element(By.NAME, "search").is_displayed()
    phone.get(phone.base_url + f"/admin/notifications?app_id={phone_data['app_id']}")
    wait(phone).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert phone.execute_script("return document.getElementById('filters-panel').open") is True
