"""The one Huey instance. Tasks import it; `huey_consumer app.huey` runs them.

PriorityRedisHuey so that admin work (bulk retries, the scheduler) runs before the thousands of
snapshot jobs a bulk retry queues: each task declares its priority (higher runs first).
"""
import logging
import os
import sys
import threading

from huey import PriorityRedisHuey

from . import log_format, runtime
from .config import ConfigError, load_settings

log = logging.getLogger(__name__)

_logging_once = threading.Lock()
_start_once = threading.Lock()
_settings = None
PRIORITY_ADMIN = 100
PRIORITY_SNAPSHOT = 0

huey = PriorityRedisHuey(
    "docora-admin",
    url=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
    # Results are not read by anyone: progress lives in bulk_operations and the Redis hash.
    results=False,
)


@huey.on_startup()
def start_worker_runtime():
    """Each consumer worker needs the pool and Redis client the services use; the process
    needs its watchdog thread (started once, whichever worker comes first)."""
    global _settings
    _log_like_huey()  # huey_consumer has set up its handler by now
    # Every worker thread runs this hook: the settings are read once per process, since reading
    # them hashes ADMIN_PASSWORD (scrypt, ~0.1 s of CPU each), which held 8 workers back for a
    # second at every start.
    with _start_once:
        try:
            if _settings is None:
                _settings = load_settings()
            runtime.start(_settings, pool_size=int(os.environ.get("WORKER_POOL_SIZE", "8")))
        except ConfigError as exc:
            sys.stderr.write(f"Configuration error: {exc}\n")
            sys.stderr.flush()
            os._exit(2)
    from .services import watchdog

    watchdog.start()


def _log_like_huey():
    """One-line log messages in the consumer's format, ours included. huey_consumer puts its
    handler on the `huey` logger only: our modules share that handler (rather than the root
    logger, through which huey's lines would print twice)."""
    huey_logger = logging.getLogger("huey")
    with _logging_once:  # every worker thread runs the start-up hook
        log_format.install(logger=huey_logger)
        ours = logging.getLogger("docora_admin")
        if not ours.handlers:
            for handler in huey_logger.handlers:
                ours.addHandler(handler)
            ours.setLevel(logging.INFO)
            ours.propagate = False
