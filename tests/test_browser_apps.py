"""An app's life in a real browser: onboard it from the console, see its credentials once,
deliver to it (signed with the key typed at onboarding), delete it with the typed-name dialog.
Same servers and helpers as test_browser_smoke."""
import bcrypt
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from docora_admin import db
from tests.test_browser_smoke import local_repo, log_in, statuses, text, wait
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser

CLIENT_KEY = "browser-typed-client-key-0123456789"


@pytest.fixture
def receiver():
    r = Receiver(auth_key=CLIENT_KEY)
    yield r
    r.close()


def _field(driver, element_id, value):
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def test_onboard_deliver_and_delete_an_app(browser, seed, receiver, tmp_path):
    log_in(browser, "/admin/apps")
    browser.find_element(By.ID, "onboard-open").click()
    wait(browser).until(EC.url_contains("/admin/apps/onboard"))
    suggested = browser.find_element(By.ID, "onboard-client-key").get_attribute("value")
    assert len(suggested) >= 16
    _field(browser, "onboard-app-name", "Browser Born App")
    _field(browser, "onboard-base-url", receiver.base_url)
    _field(browser, "onboard-email", "team@example.com")
    _field(browser, "onboard-client-key", CLIENT_KEY)
    browser.find_element(By.ID, "onboard-submit").click()

    # Shown once: the card holds the id, the token and the key, each with its copy button.
    wait(browser).until(EC.visibility_of_element_located((By.ID, "onboarded")))
    app_id = text(browser, "onboarded-app-id").strip()
    token = text(browser, "onboarded-token").strip()
    assert text(browser, "onboarded-client-key").strip() == CLIENT_KEY
    with db.connection() as conn:
        row = conn.execute("SELECT app_name, base_url, token_hash FROM apps WHERE app_id = %s",
                           (app_id,)).fetchone()
    assert (row["app_name"], row["base_url"]) == ("Browser Born App", receiver.base_url)
    assert bcrypt.checkpw(token.encode(), row["token_hash"].encode())
    copy = browser.find_element(By.CSS_SELECTOR, "[data-copy='onboarded-token']")
    copy.click()
    wait(browser).until(lambda d: copy.text != "Copy token")  # it says what it did
    browser.find_element(By.ID, "onboarded-open").click()
    wait(browser).until(EC.url_contains(f"/admin/apps/{app_id}"))
    assert token not in browser.page_source and CLIENT_KEY not in browser.page_source

    # The app registers a repository (through Docora's API; here a row), and gets it.
    repository_id = local_repo(seed, tmp_path / "remote", "born", "docs")
    link = seed.link(app_id, repository_id, status="failed")
    browser.refresh()
    browser.find_element(By.CSS_SELECTOR, f"#link-{app_id}-{repository_id} .retry-button").click()
    wait(browser, 30).until(lambda d: statuses(link) == ["synced"])
    assert sorted(p for (_, _, p) in receiver.files) == ["README.md", "docs/guide.md"]
    assert receiver.bad_signatures == 0 and receiver.violations == []

    # Delete it: the button stays disabled until the name is typed exactly.
    browser.refresh()
    browser.find_element(By.ID, "app-delete-open").click()
    confirm = wait(browser).until(EC.visibility_of_element_located((By.ID,
                                                                    "app-delete-confirm")))
    assert not confirm.is_enabled()
    name = browser.find_element(By.ID, "app-delete-name")
    name.send_keys("Browser Born")
    assert not confirm.is_enabled()
    name.send_keys(" App")
    wait(browser).until(lambda d: confirm.is_enabled())
    confirm.click()
    wait(browser).until(lambda d: d.current_url.endswith("/admin/apps"))
    flash = browser.find_element(By.CSS_SELECTOR, "main").text
    assert "Browser Born App deleted with its 1 repository link; 1 repository no other app " \
           "followed removed too." in flash
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM apps WHERE app_id = %s",
                            (app_id,)).fetchone()["n"] == 0
        assert conn.execute("SELECT count(*) AS n FROM repositories WHERE repository_id = %s",
                            (repository_id,)).fetchone()["n"] == 0
