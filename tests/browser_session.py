"""What the browser tests share, to save start-up time:
- one headless Chromium for the session (`chromium`), made like new before each test (`browser`):
  one blank tab, no cookies, storage, cache or console entries;
- their servers, kept running from one test to the next that asks for the same ones (a module's
  tests, and the next module's when it wants the same servers) and stopped as soon as the next
  test does not want them, as a module-scoped fixture would be: no consumer of theirs runs beside
  another test. Tests wanting the same kept servers are run one module after the other.

On failure each test leaves failure.png (and the page source; one pair per open tab) in its
pytest temp folder. Imported by tests/conftest.py, so the fixtures and hooks are everyone's."""
import shutil

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException

from docora_admin.huey_app import huey
# tests.processes imports tests.conftest, which imports this module: used at call time.
from tests import processes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# The watchdog recounts bulk outcomes every second instead of every five, so settling shows fast.
WATCHDOG_INTERVAL_SECONDS = 1


def run_servers(logs, **env):
    """gunicorn and a Huey consumer for browser tests (a generator: yields the web process, then
    stops both); `env` goes to both."""
    huey.flush()
    web = processes.start_web(logs, BULK_CHUNK_SIZE=25, **env)
    consumer = processes.start_consumer(logs, workers=2, BULK_CHUNK_DELAY_MS=75,
                                        WATCHDOG_INTERVAL_SECONDS=WATCHDOG_INTERVAL_SECONDS,
                                        DELIVERY_TIMEOUT_S=5,
                                        DOCORA_GIT_CACHE=logs / "git-cache", **env)
    yield web
    consumer.stop()
    web.stop()
    huey.flush()


def run_web(logs):
    """gunicorn alone (no consumer: what is queued stays queued)."""
    huey.flush()
    web = processes.start_web(logs)
    yield web
    web.stop()
    huey.flush()


_kept = {}  # fixture name -> (the generator that started its servers, what it yielded)


def _keep(name, start):
    if name not in _kept:
        generator = start()
        _kept[name] = (generator, next(generator))
    return _kept[name][1]


@pytest.fixture
def smoke_servers(tmp_path_factory, migrated_database):
    """gunicorn and a consumer with run_servers' settings (kept)."""
    return _keep("smoke_servers", lambda: run_servers(tmp_path_factory.mktemp("servers")))


@pytest.fixture
def plain_web(tmp_path_factory, migrated_database):
    """gunicorn alone, default settings (kept)."""
    return _keep("plain_web", lambda: run_web(tmp_path_factory.mktemp("web")))


@pytest.fixture
def servers(smoke_servers):
    """What `browser` points at; a module with servers of its own defines its `servers`."""
    return smoke_servers


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the test's own fixtures (its browser, a module's receiver) are finalised first
    wanted = set(nextitem.fixturenames) if nextitem is not None else set()
    for name in [name for name in _kept if name not in wanted]:
        generator, _ = _kept.pop(name)
        next(generator, None)  # runs its clean-up


def pytest_collection_modifyitems(items):
    """Modules whose tests want the same kept servers run one after the other, where the first
    of them would run (their order, and every other test's, unchanged)."""
    wants = {}
    for item in items:
        wants.setdefault(item.module, set()).update(
            name for name in ("smoke_servers", "plain_web") if name in item.fixturenames)
    first = {}
    for index, item in enumerate(items):
        for name in wants[item.module]:
            first.setdefault(name, index)
    order = {item: (min((first[n] for n in wants[item.module]), default=index), index)
             for index, item in enumerate(items)}
    items.sort(key=order.__getitem__)


def chrome(tmp_path, base_url, keep_console=False):
    """Headless Debian Chromium on a fresh profile, pointed at `base_url`."""
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 # A test with two tabs keeps both live: the one in the background polls too.
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows",
                 f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    if keep_console:  # CSP violations, among others, are reported there
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.base_url = base_url
    driver.console = []
    return driver


def save_failure(request, driver, tmp_path):
    """A screenshot and the page source of every tab when the test failed."""
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    for n, handle in enumerate(driver.window_handles):
        driver.switch_to.window(handle)
        name = "failure" if n == 0 else f"failure-tab{n + 1}"
        driver.save_screenshot(str(tmp_path / f"{name}.png"))
        (tmp_path / f"{name}.html").write_text(driver.page_source)
        print(f"screenshot saved to {tmp_path / f'{name}.png'}")


class _Chromium:
    def __init__(self, folder):
        self.folder, self.driver = folder, None

    def fresh(self, base_url):
        """The browser as a new profile would be, pointed at `base_url` (a new one if the last
        test left it unusable)."""
        try:
            if self.driver is not None:
                return _made_like_new(self.driver, base_url)
        except WebDriverException:
            self.quit()
        self.driver = chrome(self.folder, base_url, keep_console=True)
        self.driver.initial_size = self.driver.get_window_size()
        return self.driver

    def quit(self):
        if self.driver is not None:
            self.driver.quit()
            self.driver = None


def _made_like_new(driver, base_url):
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        pass
    driver.get("about:blank")  # the last test's page stops polling
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    for origin in {base_url, driver.base_url}:
        driver.execute_cdp_cmd("Storage.clearDataForOrigin",
                               {"origin": origin, "storageTypes": "all"})
    driver.set_window_size(driver.initial_size["width"], driver.initial_size["height"])
    driver.get_log("browser")  # reading empties it
    driver.console = []
    driver.base_url = base_url
    return driver


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    made = _Chromium(tmp_path_factory.mktemp("chromium"))
    yield made
    made.quit()


@pytest.fixture
def browser(request, tmp_path, servers, chromium):
    """Chromium, like new, pointed at `servers`; the console entries a test read (into
    .console) are printed after it."""
    driver = chromium.fresh(servers.url)
    yield driver
    save_failure(request, driver, tmp_path)
    driver.get("about:blank")  # its page stops polling servers about to stop
    if driver.console:
        print("browser console:", *driver.console, sep="\n  ")


def pytest_sessionfinish(session):
    """Kept servers still running when the run stopped early (-x, Ctrl-C) are stopped too."""
    for generator, _ in _kept.values():
        next(generator, None)
    _kept.clear()
