"""The attempt inspector in headless Chromium: open an attempt's request and response on the link
page (a <details> element: no script needed). Only a web server: the attempt is made in this
process, so no consumer is started: the shared browser points at the kept plain_web
(tests/browser_session.py)."""
import pytest
from selenium.webdriver.common.by import By

from docora_admin.services.delivery import snapshot
from tests.test_attempt_inspector import git_cache, linked, repo  # noqa: F401 (fixtures)
from tests.test_browser_smoke import log_in, wait
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def servers(plain_web):
    return plain_web


@pytest.fixture
def receiver():
    r = Receiver()
    r.status = 503
    r.answer_body = b'{"error": "<b>maintenance</b> until 12:00"}'
    r.answer_headers = [("X-Request-Id", "req-42")]
    yield r
    r.close()


def test_open_an_attempts_request_and_response(browser, seed, receiver, repo):  # noqa: F811
    app_id, repository_id = linked(seed, receiver, repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "pending_snapshot"
    log_in(browser, f"/admin/apps/{app_id}/links/{repository_id}")
    inspector = browser.find_element(By.CSS_SELECTOR, "details.exchange")
    summary = inspector.find_element(By.TAG_NAME, "summary")
    assert summary.text == "Request and response: HTTP 503"
    request = inspector.find_element(By.CSS_SELECTOR, ".exchange-request")
    assert not request.is_displayed()  # closed until asked for
    summary.click()
    wait(browser).until(lambda d: request.is_displayed())
    assert request.find_element(By.CSS_SELECTOR, ".exchange-line").text == \
        f"POST {receiver.base_url}/create"
    assert "X-Docora-Signature" in request.text
    response = inspector.find_element(By.CSS_SELECTOR, ".exchange-response")
    assert "HTTP 503 Service Unavailable" in response.text
    assert "X-Request-Id" in response.text and "req-42" in response.text
    body = response.find_element(By.CSS_SELECTOR, ".exchange-body")
    assert body.text == '{"error": "<b>maintenance</b> until 12:00"}'  # shown as text, escaped
    assert response.find_elements(By.TAG_NAME, "b") == []
