"""The consumer's entry (`huey_consumer app.huey`, through app.py): every task, and what a
consumer process starts beyond huey_app's runtime, its watchdog thread. The web and the CLI
import it too (through app.py); the start-up hook runs only in a consumer."""
from . import tasks  # noqa: F401  (defines every task and hands them to task_handles)
from .huey_app import huey
from .services.jobs import watchdog


@huey.on_startup()
def start_watchdog():
    """After huey_app's start_worker_runtime (hooks run in the order they were added): the
    watchdog thread, once per process, whichever worker comes first."""
    watchdog.start()
