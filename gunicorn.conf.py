"""gunicorn reads this file by itself when started from the repository's root
(`gunicorn 'app:create_app()'`): no control socket, and the hook prometheus_client's
multi-process mode asks for.

With PROMETHEUS_MULTIPROC_DIR set, each web worker writes its metric samples to files in that
directory and /metrics merges them (docora_admin/metrics.py). The directory must exist and be
emptied before gunicorn starts (scripts/run does both); when a worker exits, its live gauges
are dropped here.
"""
import os

# gunicorn 24+ opens a control socket for `gunicornc` in the home directory (~/.gunicorn/), one
# path for every gunicorn of the user: two instances (scripts/run beside the tests, or several
# sites) would take it from each other, and nothing here uses it. Off; set it in your own
# config (or --control-socket) to manage a server with gunicornc.
control_socket_disable = True


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# LOG_FORMAT=json: gunicorn's own lines (the master's start-up, worker boots and exits) as JSON
# objects too, through the formatter the app uses (docora_admin/log_format.py). The app sets its
# own handlers in each worker; this covers what gunicorn logs before and around it.
if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "docora_admin.log_format.JsonLineFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False,
                               "qualname": "gunicorn.error"},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False,
                                "qualname": "gunicorn.access"},
        },
    }
