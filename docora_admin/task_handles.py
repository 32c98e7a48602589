"""The Huey tasks the services queue, known here so that no service imports tasks.py (which
imports the services its tasks run: a circle). tasks.py hands each task in as it defines it
(`@task_handles.provides("snapshot")`); every process imports tasks.py through app.py (web,
consumer, CLI) and the tests through conftest.py. services/jobs/job_queue.py is what queues them."""
_tasks = {}


def provides(name):
    """Decorator for a Huey task in tasks.py: register it under `name`."""
    def register(task):
        _tasks[name] = task
        return task
    return register


def task(name):
    """The Huey task registered as `name` (call it to queue a run, .s() for a Task)."""
    try:
        return _tasks[name]
    except KeyError:
        raise RuntimeError(f"task {name!r} is not defined: import docora_admin.tasks first "
                           "(app.py does)") from None
