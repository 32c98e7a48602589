"""Delivery control with real consumer processes: per-app limits hold across two consumers
(measured at the receiver), and a paused app loses no job across a consumer restart."""
import pytest

from docora_admin import db
from docora_admin.huey_app import huey
from tests.processes import start_consumer, wait_for
from tests.test_outcomes import linked, receivers  # noqa: F401  (receivers is a fixture)
from tests.test_snapshot import Repo

RATE = 15
CONCURRENCY = 2
FILES = 12


@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path)
    r.commit({f"docs/page{n:02}.md": f"# Page {n}\n" * 20 for n in range(FILES)})
    return r


@pytest.fixture
def consumers(tmp_path):
    started = []

    def start(name, **env):
        consumer = start_consumer(tmp_path, workers=4, name=name, DELIVERY_TIMEOUT_S=5,
                                  DOCORA_GIT_CACHE=tmp_path / "git-cache",
                                  WATCHDOG_INTERVAL_SECONDS=1, **env)
        started.append(consumer)
        return consumer

    huey.flush()
    yield start
    for consumer in started:
        consumer.stop()
    huey.flush()


def _statuses(app_id):
    with db.connection() as conn:
        return [row["status"] for row in conn.execute(
            "SELECT status FROM app_repositories WHERE app_id = %s", (app_id,))]


ARRIVAL_JITTER_S = 0.1


def test_two_consumers_never_exceed_an_apps_rate_or_concurrency(logged_in, seed, repo,
                                                                 receivers, consumers):
    receiver = receivers(200)
    receiver.delay = 0.03
    app_id, _ = linked(seed, receiver, repo, count=4, name="Limited App")
    limits = logged_in.post(f"/admin/api/apps/{app_id}/limits",
                            json={"rate_per_second": RATE, "max_concurrency": CONCURRENCY})
    assert limits.status_code == 200
    consumers("consumer-a")
    consumers("consumer-b")
    assert logged_in.post("/admin/api/retry/all").status_code == 200
    wait_for(lambda: _statuses(app_id) == ["synced"] * 4, 60, message="all delivered")

    arrivals = sorted(receiver.arrivals)
    assert len(arrivals) == 4 * FILES and receiver.bad_signatures == 0
    # Turns are 1/RATE apart, and each request arrives some delay after its turn. While that
    # delay varies by no more than ARRIVAL_JITTER_S (a loaded CI machine), the arrivals within
    # any window of 1 s - ARRIVAL_JITTER_S had their turns within 1 s: RATE of them, plus one
    # of slack. The average rate is held to within 5% on the line after.
    busiest = max(sum(1 for t in arrivals[i:] if t < start + 1.0 - ARRIVAL_JITTER_S)
                  for i, start in enumerate(arrivals))
    assert busiest <= RATE + 1
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) / RATE * 0.95
    assert receiver.max_in_flight <= CONCURRENCY


def test_a_paused_app_loses_no_job_across_a_consumer_restart(logged_in, seed, repo, receivers,
                                                            consumers):
    receiver = receivers(200)
    app_id, _ = linked(seed, receiver, repo, count=3, name="Paused App")
    assert logged_in.post(f"/admin/api/apps/{app_id}/pause").status_code == 200
    first = consumers("consumer-1")
    assert logged_in.post("/admin/api/retry/all").status_code == 200
    wait_for(lambda: huey.pending_count() == 0, 30, message="the queue drained")
    first.stop()
    assert receiver.arrivals == [] and _statuses(app_id) == ["pending_snapshot"] * 3
    huey.flush()  # not even the queue survives; PostgreSQL holds the links
    consumers("consumer-2")
    assert logged_in.post(f"/admin/api/apps/{app_id}/resume").get_json()["data"][
        "released"] == 3
    wait_for(lambda: _statuses(app_id) == ["synced"] * 3, 60, message="all delivered")
    assert len(receiver.deliveries) == 3 * FILES
