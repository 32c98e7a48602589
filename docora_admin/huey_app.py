"""The one Huey instance. Tasks import it; `huey_consumer app.huey` runs them.

PriorityRedisHuey so that admin work (bulk retries, the scheduler) runs before the thousands of
snapshot jobs a bulk retry queues: each task declares its priority (higher runs first).
"""
import logging
import os
import sys
import threading

from huey import PriorityRedisHuey
from huey import signals as S
from huey.consumer import Consumer

from . import log_format, outage_log, runtime
from .config import ConfigError, load_settings
from .worker_groups import GroupedPriorityStorage

log = logging.getLogger(__name__)

_logging_once = threading.Lock()
_start_once = threading.Lock()
_settings = None
PRIORITY_ADMIN = 100
PRIORITY_SNAPSHOT = 0

class SignalSafeConsumer(Consumer):
    """huey's consumer sets its signal handlers only after its scheduler and workers have
    started, so a SIGINT or SIGTERM in that window (a Ctrl-C, a supervisor's stop right after
    a start) ended the process with a KeyboardInterrupt traceback instead of a graceful stop.
    Setting them first makes any stop signal the graceful one: run() sees it on its first loop.
    It also routes huey's lost-connection tracebacks to one line per outage (outage_log)."""

    def start(self):
        self._set_signal_handlers()
        outage_log.install_huey_filter()  # one line per outage, not a traceback per poll
        super().start()


class DocoraHuey(PriorityRedisHuey):
    """Huey without revocation: whether a job runs is decided by its link's claim (and a bulk
    operation's by its row), never by a revoke flag. Huey looks a task's flags up before running
    it and deletes its flag after: two Redis round trips per snapshot job, spared here. Its
    storage keeps a queue per worker group (worker_groups.py)."""

    storage_class = GroupedPriorityStorage

    def create_consumer(self, **options):
        return SignalSafeConsumer(self, **options)

    def enqueue(self, task):
        """A snapshot job (one the scheduler moves to the queue at its time: a backoff, a link
        given back) goes to its repository's worker group's queue, as job_queue's pushes do."""
        storage = self.storage
        if task.name != "snapshot" or self._immediate or not storage.group_keys:
            return super().enqueue(task)
        if task.expires:
            task.resolve_expires(self.utc)
        self._emit(S.SIGNAL_ENQUEUED, task)
        storage.enqueue_to(storage.key_for(task.args[1]), self.serialize_task(task),
                           task.priority)
        return None

    def revoke(self, task, revoke_until=None, revoke_once=False):
        raise NotImplementedError("tasks are not revoked in Docora Admin")

    def revoke_all(self, task_class, revoke_until=None, revoke_once=False):
        raise NotImplementedError("tasks are not revoked in Docora Admin")

    def is_revoked(self, task, timestamp=None, peek=True):
        return False

    def delete(self, key):
        if key.startswith("r:"):  # a task's revoke flag (Task.revoke_id): never set
            return False
        return super().delete(key)


huey = DocoraHuey(
    "docora-admin",
    url=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
    # Results are not read by anyone: progress lives in bulk_operations and the Redis hash.
    results=False,
)


class _FormatBeforeFirstLine(logging.Filter):
    """huey_consumer adds its handler to the `huey` logger after importing this module, and
    logs its start-up lines (one of them spread over several lines) before our start-up hook
    runs. On the first record that reaches a logger it watches, with the handler in place, this
    gives that handler our format (LOG_FORMAT: one-line text or JSON), then steps aside."""

    WATCHED = ("huey", "huey.consumer")

    def filter(self, record):
        huey_logger = logging.getLogger("huey")
        if huey_logger.handlers:
            json_lines = os.environ.get("LOG_FORMAT", "").strip().lower() == "json"
            log_format.install(logger=huey_logger, json_lines=json_lines)
            for name in self.WATCHED:
                logging.getLogger(name).removeFilter(self)
        return True


_first_line_filter = _FormatBeforeFirstLine()
for _name in _FormatBeforeFirstLine.WATCHED:
    logging.getLogger(_name).addFilter(_first_line_filter)


@huey.on_startup()
def start_worker_runtime():
    """Each consumer worker needs the pool and Redis client the services use (consumer.py then
    starts the process's watchdog thread)."""
    global _settings
    # Every worker thread runs this hook: the settings are read once per process.
    with _start_once:
        try:
            if _settings is None:
                _settings = load_settings()
        except ConfigError as exc:
            sys.stderr.write(f"Configuration error: {exc}\n")
            sys.stderr.flush()
            os._exit(2)
        _log_like_huey(_settings)  # huey_consumer has set up its handler by now
        runtime.start(_settings, pool_size=int(os.environ.get("WORKER_POOL_SIZE", "8")))


# Huey's INFO lines for every task it runs ("Executing …", "… executed in 0.05s", "Added task
# … to schedule"). A bulk retry or a demo with broken apps runs hundreds of snapshot jobs a
# minute, and these lines buried everything else; each attempt that matters is in the attempt
# log (and the link page) anyway. They are shown with LOG_LEVEL=DEBUG.
_PER_TASK_MESSAGES = frozenset({"Executing %s", "%s executed in %0.3fs",
                                "Added task %s to schedule, eta %s"})


class PerTaskLinesAtDebug(logging.Filter):
    """On the `huey` logger: its per-task INFO lines become DEBUG lines."""

    def __init__(self, show_debug):
        super().__init__()
        self.show_debug = show_debug

    def filter(self, record):
        if record.levelno == logging.INFO and record.msg in _PER_TASK_MESSAGES:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.show_debug
        return True


def _log_like_huey(settings):
    """One-line log messages in the consumer's format (or JSON lines), ours included.
    huey_consumer puts its handler on the `huey` logger only: our modules share that handler
    (rather than the root logger, through which huey's lines would print twice)."""
    huey_logger = logging.getLogger("huey")
    level = getattr(logging, settings.log_level)
    with _logging_once:  # every worker thread runs the start-up hook
        log_format.install(logger=huey_logger, json_lines=settings.log_format == "json")
        if not any(isinstance(f, PerTaskLinesAtDebug) for f in huey_logger.filters):
            huey_logger.addFilter(PerTaskLinesAtDebug(show_debug=level <= logging.DEBUG))
        ours = logging.getLogger("docora_admin")
        if not ours.handlers:
            for handler in huey_logger.handlers:
                ours.addHandler(handler)
            ours.setLevel(level)
            ours.propagate = False
