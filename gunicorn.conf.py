"""gunicorn reads this file by itself when started from the repository's root
(`gunicorn 'app:create_app()'`): the hook prometheus_client's multi-process mode asks for.

With PROMETHEUS_MULTIPROC_DIR set, each web worker writes its metric samples to files in that
directory and /metrics merges them (docora_admin/metrics.py). The directory must exist and be
emptied before gunicorn starts (scripts/run does both); when a worker exits, its live gauges
are dropped here.
"""
import os


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
