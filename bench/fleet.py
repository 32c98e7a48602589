"""Benchmark: one worker machine × 8 workers against two machines × 4, on a slow remote (issue 28).

    .venv/bin/python bench/fleet.py [--apps 10] [--repositories 20] [--files 10] [--slow 1.5]
        [--repeat 2] [--code NAME=PATH ...] [--database-url URL] [--redis-url URL]

A "machine" is a huey_consumer process with a git cache of its own (what is per machine: its
checkouts and their locks); all share one PostgreSQL and one Redis. The remote (local file://
repositories) takes --slow seconds to serve every fetch and clone (git's
uploadpack.packObjectsHook, in a global git configuration of its own), as a busy hosting
service does. apps × repositories links, each failed with nothing delivered.

Each run, per layout (1x8; 2x4 on one queue; 2x4g, a queue per machine chosen by repository
with stealing: WORKER_GROUPS=2) and per --code checkout, interleaved: `full` is a
retry-all from empty caches until every link is synced and every file acknowledged; then one
file of every repository changes and `incremental` is a retry-all of every link again, from
the caches the full run left. Reports seconds (POST → last link synced and last file
acknowledged), medians over --repeat, and the clones + fetches git ran.

Measured on a 2-core machine (defaults: 10 apps × 20 repositories = 200 links, 10 files each,
remote 1.5 s), medians of 2 runs, full / incremental:
  before issue 28 (one Redis lock per repository for every machine), interleaved with after:
    1x8 8.42–8.75 / 8.20–8.31 s, 2x4 11.40–12.34 / 10.37–12.10 s;
  after (a flock per checkout, per machine): 1x8 8.38–8.73 / 8.21–8.32 s, 2x4 10.11–11.65 /
    10.43–10.57 s; 2x4g (a queue per machine) 9.23–9.96 / 9.57–9.63 s, 24 clones against 31.
Two machines were still slower than one there: most of a machine's workers waited on the lock
of the repository whose links came together while one of them fetched (a give-back through
Huey's schedule instead of the wait was tried: 1x8 went to 7.5 s, 2x4g got worse, as idle
workers stole the other group's links and cloned its repositories; not kept).

Then (issue 28, third session): repositories shared out evenly between the groups (the hash
gave 12 and 8), a job that finds its repository being fetched by another worker of its machine
gives its link back into its group's queue behind the other waiting jobs (not into the
schedule, so its machine does not go stealing meanwhile), and a live group's last jobs are
left to it (a thief steals only a backlog of 64, or from a group whose watchdog stopped). Same
machine, four other engineers' test runs beside it (noisy), 3 interleaved runs, full /
incremental, median (range):
  before (3060707): 1x8 9.72 (9.35–10.58) / 9.98 (9.23–10.19) s,
                    2x4g 12.87 (10.56–13.35) / 10.43 (9.60–10.74) s, 24 clones;
  after:            1x8 8.29 (7.37–11.28) / 8.40 (6.51–8.96) s,
                    2x4g 8.29 (7.13–8.67) / 7.59 (6.63–10.29) s, 20–22 clones.
Without the steal rule (the give-back alone), 2x4g was 8.6 / 8.4 s against 1x8's 7.3 / 6.9 s
in the same run, 24 clones: the idle machine's thefts at the end cost a clone each.
"""
import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench.bulk_retry import ensure_database  # noqa: E402
from bench.retry_to_delivered import (ReceiverProcess, app_env, git, git_commands,  # noqa: E402
                                      launch_consumers, login, make_repositories, seed,
                                      stop_consumers)
from tests.slow_remote import slow_remote  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_bench_fleet"
DEFAULT_REDIS = "redis://127.0.0.1:6379/7"
# name → (machines, workers each, worker groups: 1 is one shared queue, 2 is a queue per
# machine, chosen by repository, with stealing: worker_groups.py)
LAYOUTS = {"1x8": (1, 8, 1), "2x4": (2, 4, 1), "2x4g": (2, 4, 2)}


def start_machines(args, code_root, tmp, machines, workers, groups, trace):
    slow = slow_remote(tmp, args.slow)
    return launch_consumers(code_root, [(tmp / f"machine{m}.log", {
        **os.environ, **app_env(args), **slow, "PYTHONPATH": str(code_root),
        "DOCORA_GIT_CACHE": str(tmp / f"cache-{m}"), "GIT_TRACE2": str(trace),
        "WATCHDOG_INTERVAL_SECONDS": "5", "WORKER_GROUPS": str(groups),
        "WORKER_GROUP": str(m % groups)}) for m in range(machines)], workers)


def use_groups(groups):
    """This process queues the jobs (its test client's POST): its Huey storage must split the
    queue as the consumers read it."""
    from docora_admin.huey_app import huey

    os.environ["WORKER_GROUPS"] = str(groups)
    os.environ["WORKER_GROUP"] = "0"
    huey.storage = huey.create_storage()


def retry_and_wait(args, client, receiver, links, files):
    """Seconds from the POST to the later of the last link synced and the last file
    acknowledged (`files` of them)."""
    headers = login(client)
    receiver.reset()
    started = time.time()
    response = client.post("/admin/api/retry/all", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    deadline = time.monotonic() + args.timeout
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        while True:
            synced, last = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'synced'), extract(epoch FROM "
                "max(updated_at) FILTER (WHERE status = 'synced')) FROM app_repositories"
            ).fetchone()
            stats = receiver.stats()
            if synced == links and stats["files"] >= files:
                assert stats["bad_signatures"] == 0, stats
                return max(float(last), stats["last_file_at"]) - started
            if time.monotonic() > deadline:
                raise RuntimeError(f"not done after {args.timeout} s: {synced}/{links} synced, "
                                   f"{stats['files']}/{files} files")
            time.sleep(0.1)


def run_once(args, code_root, layout, repositories, apps, receiver, client, tmp, round_no):
    machines, workers, groups = LAYOUTS[layout]
    use_groups(groups)
    links = len(apps) * len(repositories)
    seed(args.database_url, apps, repositories, receiver.base_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    for m in range(2):
        shutil.rmtree(tmp / f"cache-{m}", ignore_errors=True)
    trace = tmp / "git-trace"
    trace.unlink(missing_ok=True)
    procs = start_machines(args, code_root, tmp, machines, workers, groups, trace)
    try:
        full = retry_and_wait(args, client, receiver, links, links * args.files)
        full_git = git_commands(trace)
        for path, _ in repositories:  # one file of every repository changes
            (path / "dir0" / "doc0.md").write_text(f"changed in round {round_no} {layout}\n")
            git("commit", "--quiet", "-am", "change", cwd=path)
            git("repack", "-a", "-d", "-q", cwd=path)
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute("UPDATE app_repositories SET status = 'failed', retry_count = 5, "
                         "updated_at = now()")
        trace.unlink(missing_ok=True)
        incremental = retry_and_wait(args, client, receiver, links, links)
        incremental_git = git_commands(trace)
    finally:
        stop_consumers(procs)
    return full, incremental, full_git, incremental_git


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--file-kb", type=float, default=8)
    parser.add_argument("--slow", type=float, default=1.5, help="seconds per fetch or clone")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--code", action="append", default=[],
                        help="NAME=PATH of a checkout whose code the consumers run")
    parser.add_argument("--layout", action="append", choices=sorted(LAYOUTS),
                        help="run only this layout (repeatable; default: all)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (consumer logs, git trace) and say where")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    codes = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.code] \
        or [("this", ROOT)]
    os.environ.update(app_env(args))  # before docora_admin.huey_app reads REDIS_URL
    ensure_database(args.database_url)
    from docora_admin import create_app, db

    db.migrate(args.database_url)
    client = create_app(app_env(args)).test_client()
    tmp = Path(tempfile.mkdtemp(prefix="docora-fleet-bench-"))
    repositories = make_repositories(tmp / "repos", args.repositories, args.files, args.file_kb,
                                     random.Random(7), packed=True)
    apps = {f"app_bench_{n:02d}": f"bench-client-key-{n}" for n in range(args.apps)}
    receiver = ReceiverProcess(apps, tmp)
    results = defaultdict(list)
    try:
        for round_no in range(args.repeat):
            for name, root in codes:
                for layout in args.layout or LAYOUTS:
                    if LAYOUTS[layout][2] > 1 and not (root / "docora_admin/worker_groups.py"
                                                       ).exists():
                        continue  # code from before worker groups reads one queue only
                    full, inc, full_git, inc_git = run_once(args, root, layout, repositories,
                                                            apps, receiver, client, tmp,
                                                            round_no)
                    results[(name, layout)].append((full, inc))
                    print(f"{name:>8} {layout}: full {full:6.2f} s (clones {full_git['clone']}, "
                          f"fetches {full_git['fetch']}), incremental {inc:6.2f} s "
                          f"(clones {inc_git['clone']}, fetches {inc_git['fetch']})", flush=True)
    finally:
        receiver.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.apps} apps x {args.repositories} repositories, {args.files} files each, "
          f"remote {args.slow} s per fetch; medians of {args.repeat}:")
    for (name, layout), runs in results.items():
        print(f"{name:>8} {layout}: full {statistics.median(r[0] for r in runs):6.2f} s, "
              f"incremental {statistics.median(r[1] for r in runs):6.2f} s")


if __name__ == "__main__":
    main()
