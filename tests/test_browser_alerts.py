"""Alerts in headless Chromium, against gunicorn and a Huey consumer configured with a local
webhook: send a test alert from the Alerts page and see it listed, then delivered by the
worker. Same helpers as test_browser_smoke.py; servers of its own (the webhook setting)."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from docora_admin import db
from tests.alert_receivers import AlertWebhook
from tests.browser_session import run_servers
from tests.test_browser_smoke import log_in, wait

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def webhook():
    hook = AlertWebhook()
    yield hook
    hook.close()


def _no_alerts():
    with db.connection() as conn:
        conn.execute("TRUNCATE alerts, alert_deliveries, alert_attempts CASCADE")


@pytest.fixture(scope="module")
def servers(tmp_path_factory, app, webhook):
    # Alerts left by other tests would go to this webhook as soon as the consumer starts.
    _no_alerts()
    yield from run_servers(tmp_path_factory.mktemp("alert-servers"),
                           ALERT_WEBHOOK_URL=webhook.url)


def test_send_a_test_alert_and_see_it_listed_and_delivered(browser, webhook):
    _no_alerts()
    log_in(browser, "/admin/alerts")
    assert "No alerts yet" in browser.find_element(By.ID, "alerts-empty").text
    assert "Webhook: 127.0.0.1" in browser.find_element(By.ID, "alerts-channels").text
    browser.find_element(By.ID, "alerts-test-button").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "alerts-notice")))
    assert "queued on webhook" in browser.find_element(By.ID, "alerts-notice").text
    row = browser.find_element(By.CSS_SELECTOR, "#alerts-table tr[data-kind='test']")
    assert "Test alert sent by admin" in row.text
    wait(browser).until(lambda d: webhook.kinds() == ["test"])  # the worker sent it
    browser.find_element(By.ID, "nav-alerts").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "alerts-table")))
    delivery = browser.find_element(By.CSS_SELECTOR, "#alerts-table [data-channel='webhook']")
    assert delivery.get_attribute("data-status") == "sent" and "webhook: sent" in delivery.text
