"""A stranger cannot lock the owner out (issue 24, M1 and M2), in Chromium: the owner's browser
logged in before and carries its device cookie; a guesser spread over addresses spends the
username's budget in case variants; a fresh browser is refused with the lock's message, the
owner's own browser still gets in."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from docora_admin import auth as auth_module
from docora_admin import login_limit
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.browser_session import chrome, save_failure
from tests.test_browser_smoke import wait

pytestmark = pytest.mark.browser


@pytest.fixture
def browsers(request, tmp_path, plain_web):
    """Browsers of their own (a profile each: the owner's keeps its device cookie)."""
    made = []

    def make(name):
        driver = chrome(tmp_path / name, plain_web.url)
        made.append(driver)
        return driver
    yield make
    for driver in made:
        save_failure(request, driver, tmp_path)
        driver.quit()


def _form_login(driver, username, password):
    driver.get(f"{driver.base_url}/admin/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()


def test_a_stranger_locks_the_username_but_not_its_owners_browser(app, browsers):
    owner = browsers("owner")
    _form_login(owner, ADMIN_USERNAME, ADMIN_PASSWORD)
    wait(owner).until(lambda d: "/admin/login" not in d.current_url)
    assert owner.get_cookie(auth_module.DEVICE_COOKIE)["httpOnly"] is True
    owner.find_element(By.ID, "logout-button").click()
    wait(owner).until(EC.presence_of_element_located((By.ID, "login-logged-out")))

    # The guesser, from ten addresses, in case variants of the name (in-process: the same Redis
    # the server counts in; a browser here would share the owner's 127.0.0.1).
    guesser = app.test_client()
    variants = [ADMIN_USERNAME.upper(), ADMIN_USERNAME.capitalize(), f" {ADMIN_USERNAME} "]
    for n in range(login_limit.USERNAME_LIMIT):
        assert guesser.post("/admin/api/login", json={
            "username": variants[n % 3], "password": "guess"},
            environ_base={"REMOTE_ADDR": f"10.7.{n}.1"}).status_code == 401

    stranger = browsers("stranger")  # no device cookie: the lock holds, and says so
    _form_login(stranger, ADMIN_USERNAME, ADMIN_PASSWORD)
    error = wait(stranger).until(EC.presence_of_element_located((By.ID, "login-error")))
    assert error.text.startswith(login_limit.USERNAME_BLOCKED_START)

    _form_login(owner, ADMIN_USERNAME, ADMIN_PASSWORD)  # the owner's own browser gets in
    wait(owner).until(lambda d: "/admin/login" not in d.current_url)
    assert owner.find_element(By.ID, "logout-button")
