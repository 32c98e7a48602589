"""The README's live demo, end to end, as a new user plays it (issue 22): `scripts/run` on the
embedded path (its own PostgreSQL and Valkey under a var/ of its own, DOCORA_VAR_DIR), with the
demo data, the demo receiver and the circuit breaker on; in Chromium: the broken apps' links fail
into the failed list, one app is paused, `devtools.receiver fix`, "Retry all failed", the paused
app's links are held with "Resume app", which delivers them, and nothing is failed any more.

Only the pace differs from a developer's run: 1 s back-off, 2 attempts and a 1 s timeout, so
the broken links fail in seconds instead of a minute or two. The circuit threshold is the demo's
own (scripts/devenv.py): a run that opened circuits would hold the links instead of failing them.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from docora_admin.services.apps.demo_data import BROKEN_APPS
from tests.processes import free_port
from tests.test_browser_smoke import attribute, start_bulk_retry, text, wait

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
PACE = {"RETRY_BACKOFF_SECONDS": "1", "MAX_RETRY_ATTEMPTS": "2", "DELIVERY_TIMEOUT_S": "1"}
START_TIMEOUT_S = 300  # the first embedded start installs requirements-embedded.txt


class Demo:
    def __init__(self, var):
        self.var = var
        self.port, receiver_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # What a developer's shell has, not the test run's settings: no DATABASE_URL, REDIS_URL,
        # TEST_* or delivery settings of ours leak into it.
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                "PIP_FIND_LINKS", "PIP_NO_INDEX")
        self.env = {k: os.environ[k] for k in keep if k in os.environ}
        self.env.update(PACE, DOCORA_VAR_DIR=str(var), DOCORA_PG_PORT="1", DOCORA_REDIS_PORT="1",
                        PORT=str(self.port), DEMO_RECEIVER_PORT=str(receiver_port))
        self.log_path = var / "run.log"
        self.proc = None

    def start(self):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(PYTHON), "scripts/devserver.py"], cwd=ROOT,
                                         env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, process_group=0)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Log in as:" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"scripts/run did not start:\n{self.log()[-3000:]}")
            time.sleep(0.5)
        self.password = re.search(r"Log in as:\s+admin / (\S+)", self.log()).group(1)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def command(self, *args):
        """A documented command with run's environment: scripts/flask, devtools' receiver."""
        done = subprocess.run([str(PYTHON), *args], cwd=ROOT, env=self.env, text=True,
                              capture_output=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # as Ctrl-C: web, worker, then the servers
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def demo():
    # Under /tmp, not pytest's root-only temp dir: as root, the embedded PostgreSQL runs as the
    # `pgserver` user, which must reach its data directory.
    var = Path(tempfile.mkdtemp(prefix="docora-demo-"))
    running = Demo(var)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        print(running.log()[-2000:])
        assert "embedded server stopped" in running.log()  # nothing left running
        shutil.rmtree(var, ignore_errors=True)


@pytest.fixture
def servers(demo):
    """What the shared browser points at."""
    return demo


def _log_in(driver, demo):
    driver.get(f"{demo.url}/admin/")
    wait(driver).until(EC.url_contains("/admin/login"))
    driver.find_element(By.ID, "username").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys(demo.password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver).until(lambda d: "/admin/login" not in d.current_url)


def _tab_count(driver, tab_id):
    value = driver.execute_script(
        "const el = document.querySelector('#' + arguments[0] + ' .tab-count');"
        "return el ? el.innerText : null;", tab_id)
    return int(value.replace(",", "")) if value else 0


def _settled_with_failures(driver, demo):
    """Reload the failed list until nothing is in progress and something failed."""
    driver.get(f"{demo.url}/admin/notifications")
    return (_tab_count(driver, "tab-in-progress") == 0 and _tab_count(driver, "tab-failed") > 0)


def test_the_readme_demo_story_plays_on_the_embedded_path(browser, demo):
    _log_in(browser, demo)

    # The broken apps' links fail for real and land in the failed list.
    wait(browser, 120).until(lambda d: _settled_with_failures(d, demo))
    failed = _tab_count(browser, "tab-failed")
    broken_rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#failed-table tbody tr td:nth-child(2)'))"
        ".map(cell => cell.innerText.trim());")
    assert set(BROKEN_APPS) <= {name.split("\n")[0].strip() for name in broken_rows}
    assert "circuit open" not in browser.page_source.lower()  # failed, not held

    # Pause one broken app from its page, then fix the receiver.
    browser.get(f"{demo.url}/admin/apps")
    paused_name = "Globex Static Site"
    browser.find_element(By.LINK_TEXT, paused_name).click()
    wait(browser).until(EC.element_to_be_clickable((By.ID, "app-pause-button"))).click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "app-resume-button")))
    paused_id = browser.current_url.rstrip("/").rsplit("/", 1)[1]
    assert "now answer 200" in demo.command("-m", "devtools.receiver", "fix")

    # "Retry all failed": everything is delivered but the paused app's links, held with the
    # button that releases them.
    browser.get(f"{demo.url}/admin/notifications")
    question = start_bulk_retry(browser, still_running=False)
    assert f"Retry {failed} failed notifications" in question
    wait(browser, 90).until(lambda d: attribute(d, "bulk-panel", "data-op-state") == "held")
    assert "held, waiting for a release" in text(browser, "bulk-panel-title")
    resume = browser.find_element(By.ID, f"held-resume-{paused_id}")
    assert "deliveries to the app are paused" in text(browser, "bulk-panel")
    resume.click()

    # Resumed: its links deliver too, and the panel says all were delivered.
    wait(browser, 90).until(lambda d: attribute(d, "bulk-panel", "data-op-state") == "delivered")
    assert attribute(browser, "bulk-panel", "data-outcome") == "all-delivered"
    assert f"{failed:,} delivered, 0 failed again" in text(browser, "bulk-deliveries")
    wait(browser).until(EC.element_to_be_clickable((By.ID, "bulk-dismiss-button"))).click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "bulk-nothing")))
    assert _tab_count(browser, "tab-failed") == 0

    # demo-break through scripts/flask, on the embedded path: the apps are broken again and
    # their links deliver again, with their circuits closed.
    out = demo.command("scripts/flaskcli.py", "demo-break")
    assert "2 app(s) broken again (error, timeout)" in out
    wait(browser, 120).until(lambda d: _settled_with_failures(d, demo))
