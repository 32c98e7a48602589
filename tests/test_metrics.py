"""/metrics: off (404) without METRICS_TOKEN, 401 without the right bearer token, Prometheus text
with it; bounded labels; request timings merged across gunicorn workers (multi-process mode)."""
import concurrent.futures
import dataclasses
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from docora_admin import runtime
from tests.conftest import TEST_DATABASE_URL
from tests.processes import start_web
from tests.tcp_proxy import TcpProxy

TOKEN = "metrics-token-" + "x" * 16


@pytest.fixture
def metrics_on(app):
    """The running app with METRICS_TOKEN set (settings are read per request)."""
    before = runtime.settings()
    runtime._settings = dataclasses.replace(before, metrics_token=TOKEN)
    yield
    runtime._settings = before


def _families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(families, name, **labels):
    family = families[name.removesuffix("_count").removesuffix("_sum")]
    for sample in family.samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    raise KeyError((name, labels))


def test_off_without_a_token_setting(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-wrong-token", TOKEN,
                                           f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_wrong_or_missing_token_is_refused(client, metrics_on, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert set(response.get_json()) == {"error"}


def test_reports_the_state_with_bounded_labels(client, metrics_on, seed):
    app_id = seed.app()
    for status in ("failed", "failed", "synced", "pending_snapshot"):
        seed.link(app_id, seed.repo(), status=status)
    client.get("/healthz")
    client.get("/no/such/page/for/metrics")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    families = _families(response.get_data(as_text=True))
    assert _value(families, "docora_links", status="failed") == 2
    assert _value(families, "docora_links", status="synced") == 1
    assert _value(families, "docora_links", status="scanning") == 0
    assert _value(families, "docora_failed_links") == 2
    assert _value(families, "docora_bulk_operations_running") == 0
    assert _value(families, "docora_queue_jobs", state="waiting") >= 0
    assert _value(families, "docora_queue_jobs", state="scheduled") >= 0
    for outcome in ("delivered", "failed", "interrupted", "deferred"):
        assert _value(families, "docora_delivery_attempts_recent", outcome=outcome) == 0
    for reason in ("paused", "circuit_open", "deferred"):
        assert _value(families, "docora_apps_held", reason=reason) == 0
    assert _value(families, "docora_metrics_source_up", source="postgresql") == 1
    assert _value(families, "docora_metrics_source_up", source="redis") == 1
    latency = families["docora_http_request_duration_seconds"]
    endpoints = {sample.labels["endpoint"] for sample in latency.samples}
    assert {"ops.healthz", "unmatched"} <= endpoints
    # No label carries an id: endpoints are Flask's names, nothing per link or app.
    text = response.get_data(as_text=True)
    assert app_id not in text and "/no/such/page" not in text


def _get(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_multiprocess_gunicorn_merges_every_worker(tmp_path, migrated_database):
    """Two gunicorn workers, PROMETHEUS_MULTIPROC_DIR set: a scrape answered by either worker
    counts every request, whichever worker served it."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # One thread each: a busy worker leaves the next connection to the other one.
    web = start_web(tmp_path, workers=2, threads=1, METRICS_TOKEN=TOKEN,
                    PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    try:
        requests = 0
        # Both workers may have written a file already, answering the start's readiness
        # probes: a worker has answered one of these requests once its file has changed.
        before = {path.name: path.read_bytes() for path in metrics_dir.glob("histogram_*.db")}

        def served():
            return {path.name for path in metrics_dir.glob("histogram_*.db")
                    if path.read_bytes() != before.get(path.name)}

        # Parallel batches until both workers have served some (one idle worker would take
        # every sequential request).
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            while len(served()) < 2 and requests < 2000:
                statuses = list(pool.map(lambda _: _get(web.url + "/healthz")[0], range(40)))
                assert set(statuses) == {200}
                requests += len(statuses)
        assert len(served()) == 2, served()
        for _ in range(4):  # whichever worker answers the scrape
            status, text = _get(web.url + "/metrics", TOKEN)
            assert status == 200
            families = _families(text)
            assert _value(families, "docora_http_request_duration_seconds_count",
                          endpoint="ops.healthz", method="GET") == requests
        assert _get(web.url + "/metrics")[0] == 401
    finally:
        web.stop()


def test_a_source_down_is_reported_not_made_up(tmp_path, migrated_database):
    """PostgreSQL unreachable: the scrape still answers, says so, and leaves its gauges out."""
    pg = urllib.parse.urlsplit(TEST_DATABASE_URL)
    proxy = TcpProxy(pg.hostname, pg.port or 5432)
    web = start_web(tmp_path, METRICS_TOKEN=TOKEN,
                    DATABASE_URL=TEST_DATABASE_URL.replace(f":{pg.port or 5432}/",
                                                           f":{proxy.port}/"))
    try:
        proxy.cut()
        started = time.monotonic()
        status, text = _get(web.url + "/metrics", TOKEN)
        assert status == 200 and time.monotonic() - started < 5
        families = _families(text)
        assert _value(families, "docora_metrics_source_up", source="postgresql") == 0
        assert _value(families, "docora_metrics_source_up", source="redis") == 1
        assert "docora_links" not in families and "docora_queue_jobs" in families
    finally:
        web.stop()
        proxy.close()
