"""Benchmark: retry-all of failed links until every app has every file (issue 12).

    .venv/bin/python bench/retry_to_delivered.py [--apps 20] [--repositories 50] [--files 20]
        [--file-kb 16] [--workers 8] [--consumers 1] [--worker-type thread|process]
        [--packed] [--remote daemon|file] [--repeat 1] [--code NAME=PATH ...] [--py-spy PATH]
        [--perf] [--profile-dir DIR] [--database-url URL] [--redis-url URL]

Every app is linked to every repository (apps × repositories links), each link `failed` with
nothing delivered yet. Each repository is a local git repository of --files files averaging
--file-kb KB (70% text, 30% binary), its objects loose as the issue measured (--packed:
repacked, as a hosting service keeps a repository), served by `git daemon` in a process of its
own, as a remote is (--remote file: file:// URLs, whose clones run the remote's side,
upload-pack and pack-objects, as children of the consumer: measured on 2026-12-06, that side was
~0.09 ms of the "git" CPU per file, about as much as the consumer's own clones). A keep-alive
receiver that checks every signature runs in a process of its own (bench/keepalive_receiver.py),
with TCP_NODELAY.

One run: fresh tables, Redis db and git cache; start --consumers real `huey_consumer app.huey -w
WORKERS -k thread` processes; POST /admin/api/retry/all (Flask test client, in this process);
wait until every link is `synced` and the receiver has acknowledged every file. The time runs
from the POST to the later of the last link's status change and the last file's acknowledgement.
Then, against the same receiver, a plain keep-alive client (http.client, WORKERS × CONSUMERS
threads) sends the same payloads, signed the same way: the receiver's own ceiling, in the same
run.

--code NAME=PATH runs the consumers from another checkout of the project (e.g. main before this
change: `git worktree add /work/wt-before 34979ec`), same venv, same database: give it twice or
more and with --repeat the runs are interleaved (A B A B …) and medians reported per name.

Reports links/s, files/s, MB/s (file bytes acknowledged), the consumers' CPU seconds (their
own and their git children's) per file, of which git's and the consumers' own time in the
kernel, their context switches per file, git processes by command (from git's own GIT_TRACE2
log; fetches = clone + fetch), new TCP connections the receiver accepted, the ceiling, and the
share of the ceiling's files/s delivered. --py-spy PATH samples each consumer (`py-spy record
--gil`: where the Python CPU time goes, while a thread holds the GIL) and prints the functions
by share of samples; --perf samples them with Linux perf, native code, the kernel and the git
children included (bench/perf_profile.py); --profile-dir DIR keeps the collapsed stacks and
perf's files. The consumers inherit this process's environment, so
e.g. `DELIVERY_STREAMS_PER_LINK=1 .venv/bin/python bench/retry_to_delivered.py` runs them with
that setting. Database docora_bench_throughput and Redis db 11 by default (emptied each run);
two runs at once on one database are refused.

Measured on a 2-core machine, medians of interleaved runs against 34979ec (before issue 12),
default limits: loose objects, 1 consumer × 8: before 36.0 s (555 files/s, 2.45 ms consumer CPU
per file, 9,800 git processes, ~590 new connections), after 11.45 s (1,746 files/s, 0.60 ms, 50
clones and no fetch, 8 connections); --packed: 34.9 → 10.8 s; --consumers 2: 31.2 → 9.75 s.
APP_RATE_PER_SECOND=200: 15.6 s (8 apps at a time at 200/s cannot go under 12.5 s). See the
issue's closing notes for every run.

Issue 25 (per-request costs), defaults, medians of 3 interleaved runs against 58974bf:
before 10.56 s (1,894 files/s, 0.50 ms consumer CPU per file of which git 0.12, 35% of the
receiver's ceiling, ~9.8 context switches per file), after 9.66 s (2,070 files/s, 0.44 ms of
which git 0.12, 40%). py-spy's GIL samples per run went from 766 to 624: X-Docora-Delivery-Id
without uuid objects, the timestamp's second formatted once, the repository encoded once per
link, curl handles kept per link, journal notes packed by hand, no `git ls-remote` before a
first clone. What is left is mostly not Python: about a third of the consumer's own CPU is the
kernel switching its 8 threads (the GIL handed over around each curl callback, each journal
note's send and reply) and a fifth is git; the app limiter costs one script call per link (its
slot is held per delivery stream), not per request.

Where the CPU goes now (2026-12-04, defaults, main at 94dd300, a machine shared with a test run):
0.45–0.56 ms per file, git 0.11–0.16 of it, 37–49% of the ceiling. Runs with --files 1, 5 and 20
split the consumer's own CPU (git apart) into ~2.1 ms per link (claim, what the app has, the
journal's HGETALL, the checkout's look, the outcome's statement, Huey's dequeue: each 0.1–0.2 ms,
none dominant) and ~0.25 ms per file, of which the signed curl POST alone is ~0.12 (one thread:
bench/attempt_capture.py; 8 threads, 0.10–0.11). --perf: of the consumer
process's samples, the interpreter 41%, the kernel 32% (sendto 8, futex 6, poll 6, scheduling
7, recvfrom 3), libc 9, libcurl 8, OpenSSL 5; of git's, creating files (openat, mkdir) is a
third. One experiment, not kept: without curl's header callback (6 GIL acquisitions per answer
here) consumer CPU per file was 18% lower and the run 9% shorter (medians of 3 interleaved,
loaded machine), but the attempt inspector would lose the answer's headers and Retry-After
would need CURLINFO_RETRY_AFTER.

2026-12-06 (main at bf66b1e + the git daemon remote, a slower machine of the same kind: the same
code cost 0.57-0.70 ms per file here, 0.44 on 12-04). The report line now also gives the CPU of
the git remote, PostgreSQL and Redis in the run, against the machine's core-seconds: e.g.
consumer 13.0 s, receiver 6.3, git remote 1.9, PostgreSQL 5.0, Redis 1.1 of 32.7 core-seconds.
The machine is saturated, so the share of the ceiling follows the CPU every process spends per
file, the consumer about half of it. Interleaved ×3 on this machine: --remote file 0.70 ms per
file (git 0.21), git daemon 0.59 (git 0.12), the remote's side ~0.09 ms per file moved out.
The floor under any design (bench/request_floor.py, nothing of a job but the signed POST):
133 µs of CPU per request with one thread, 134 with eight, 122 with one CurlMulti thread
driving eight; about a third of it is the kernel (waking the receiver and being woken: a
virtual machine's costly switches). --files 1 (5,000 links): 3.5 ms of the consumer's own CPU
per link and 37 context switches, spread over a dozen round trips and none above a sixth.
PostgreSQL's side, from its statement log: the outcome's statement ~1 ms when alone (4 ms in
the run, waiting for CPU and WAL flushes), the claim ~0.8 ms; synchronous_commit off for the
whole database (an upper bound, not kept) changed the run's time within the noise.
"""
import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench import perf_profile  # noqa: E402
from bench.bulk_retry import ensure_database  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_bench_throughput"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
ENCRYPTION_KEY = "0f" * 32


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com",
                            GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com"))


def make_repositories(base, count, files, file_kb, rng, packed=False):
    """`count` repositories of `files` files each; returns [(path, total bytes)]. `packed`:
    repacked after the commit, as a hosting service keeps a repository (a clone of loose
    objects makes this machine delta-search and compress them for the pack it sends)."""
    made = []
    for r in range(count):
        path = base / f"repo{r}"
        path.mkdir(parents=True)
        total = 0
        for i in range(files):
            size = max(100, int(rng.expovariate(1) * file_kb * 1000))
            folder = path / f"dir{i % 4}"
            folder.mkdir(exist_ok=True)
            if i % 10 < 7:
                line = f"line {i} of repository {r}, documentation words to make it text.\n"
                data = (line * (size // len(line) + 1)).encode()
                (folder / f"doc{i}.md").write_bytes(data)
            else:
                data = rng.randbytes(size)
                (folder / f"blob{i}.bin").write_bytes(data)
            total += len(data)
        git("init", "--quiet", "-b", "main", cwd=path)
        git("add", "-A", cwd=path)
        git("commit", "--quiet", "-m", "bench", cwd=path)
        if packed:
            git("repack", "-a", "-d", "-q", cwd=path)
        made.append((path, total))
    return made


def app_env(args):
    return {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
            "SECRET_KEY": "bench-secret-key-123456", "ADMIN_USERNAME": "bench",
            "ADMIN_PASSWORD": "bench-password", "ENCRYPTION_KEY": ENCRYPTION_KEY,
            "ALLOW_PRIVATE_WEBHOOKS": "true"}  # the bench's receivers are on 127.0.0.1


def seed(url, apps, repositories, base_url, remote=None):
    """Fresh tables: every app linked to every repository, each link failed, nothing delivered.
    The failures are dated in a shuffled order, so a repository's links are spread over the
    retry as they would be in life (the bulk retry takes them oldest first). `remote`: where
    the repositories' URLs point (GitDaemon; default FileRemote)."""
    from docora_admin import crypto

    remote = remote or FileRemote()
    key = bytes.fromhex(ENCRYPTION_KEY)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE apps, repositories, app_repositories, app_delivered_files, "
                     "repository_snapshots, bulk_operations, delivery_attempts CASCADE")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO apps (app_id, app_name, base_url, token_hash, "
                "client_auth_key_encrypted) VALUES (%s, %s, %s, 'x', %s)",
                [(app_id, f"Bench {app_id}", f"{base_url}/{app_id}", crypto.encrypt(key, secret))
                 for app_id, secret in apps.items()])
            cur.executemany(
                "INSERT INTO repositories (repository_id, github_url, owner, name) "
                "VALUES (%s, %s, 'bench', %s)",
                [(f"repo_bench_{r}", remote.url(path), path.name)
                 for r, (path, _) in enumerate(repositories)])
            links = [(app_id, f"repo_bench_{r}") for app_id in apps
                     for r in range(len(repositories))]
            random.Random(11).shuffle(links)
            cur.executemany(
                "INSERT INTO app_repositories (app_id, repository_id, status, last_error, "
                "retry_count, updated_at) VALUES (%s, %s, 'failed', 'POST /create → HTTP 500', "
                "5, now() - make_interval(secs => %s))",
                [(a, r, len(links) - n) for n, (a, r) in enumerate(links)])
        conn.execute("VACUUM ANALYZE app_repositories")
        # The last run's writes (the code before issue 12 commits per file) are flushed now,
        # not by a checkpoint during this run.
        conn.execute("CHECKPOINT")


class GitDaemon:
    """The repositories' remote, `git daemon` serving `base` over git:// in a process of its
    own, as a hosting service is one: the pack a clone asks for is made by the daemon's
    upload-pack, not by a child of the consumer (a file:// clone runs upload-pack, and with
    loose objects its delta search and compression, under the consumer, and counted as its
    git CPU)."""

    def __init__(self, base):
        with socket.socket() as probe:  # git daemon cannot report a port it chose
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # git-daemon itself, not `git daemon` (which runs it as a child): its CPU counters
        # then hold every finished upload-pack's.
        daemon = Path(subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                                     check=True).stdout.strip()) / "git-daemon"
        self.proc = subprocess.Popen(
            [str(daemon), "--reuseaddr", "--export-all", f"--base-path={base}",
             "--listen=127.0.0.1", f"--port={self.port}", str(base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)

    def url(self, path):
        return f"git://127.0.0.1:{self.port}/{path.name}"

    def cpu_seconds(self):
        """The daemon's CPU and its finished children's (upload-pack, pack-objects)."""
        return cpu_seconds(self.proc.pid)

    def close(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class FileRemote:
    """--remote file: the repositories' folders as file:// URLs (upload-pack runs under the
    consumer)."""

    @staticmethod
    def url(path):
        return path.as_uri()

    @staticmethod
    def cpu_seconds():
        return 0.0

    def close(self):
        pass


class ReceiverProcess:
    def __init__(self, apps, tmp):
        keys = tmp / "receiver-keys.json"
        keys.write_text(json.dumps(apps))
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench/keepalive_receiver.py"),
                                      str(keys)], stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.port = int(self.proc.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}"

    def _call(self, method, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stats(self):
        return self._call("GET", "/_stats")

    def reset(self):
        self._call("POST", "/_reset")

    def close(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def cpu_seconds(pid, children=True, part=None):
    """utime + stime of a process, + cutime + cstime (its waited-for children: git) unless
    `children` is False; `part` "user" or "system": that one alone (the process's own)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    wanted = {"user": fields[11:12], "system": fields[12:13]}.get(
        part, fields[11:15 if children else 13])
    return sum(int(f) for f in wanted) / os.sysconf("SC_CLK_TCK")


class Services:
    """CPU seconds PostgreSQL and Redis spent so far, read from /proc: the postmaster's own and
    its finished backends' (it waits for them) plus its live children's, and redis-server's
    (INFO cpu): the whole servers', so another run's work beside this one counts too. Each is
    None where it cannot be read (another machine, no permission)."""

    def __init__(self, database_url, redis_url):
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            self.postmaster = int(Path(f"/proc/{backend}/stat").read_text()
                                  .rsplit(")", 1)[1].split()[1])
        except (OSError, psycopg.Error, ValueError, IndexError):
            self.postmaster = None
        self.redis = redis.Redis.from_url(redis_url)

    def postgresql_cpu(self):
        if self.postmaster is None:
            return None
        try:
            total = cpu_seconds(self.postmaster)
            children = Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children")
            for pid in children.read_text().split():
                try:
                    total += cpu_seconds(int(pid))
                except OSError:
                    pass  # a backend that ended meanwhile (counted by the postmaster now)
            return total
        except OSError:
            return None

    def redis_cpu(self):
        try:
            info = self.redis.info("cpu")
        except redis.RedisError:
            return None
        return info["used_cpu_sys"] + info["used_cpu_user"]

    def now(self):
        return {"postgresql": self.postgresql_cpu(), "redis": self.redis_cpu()}

    @staticmethod
    def spent(before, after):
        return {name: None if before[name] is None or after[name] is None
                else after[name] - before[name] for name in before}


def context_switches(pid):
    """Context switches of a process's live threads so far (voluntary and not)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.endswith("ctxt_switches:") or "ctxt_switches:" in line:
                    total += int(line.split()[1])
        except (OSError, ValueError):
            pass  # a thread that ended meanwhile
    return total


def start_consumers(args, code_root, tmp, trace):
    env = {**os.environ, **app_env(args), "PYTHONPATH": str(code_root),
           "DOCORA_GIT_CACHE": str(tmp / "git-cache"), "GIT_TRACE2": str(trace),
           "WATCHDOG_INTERVAL_SECONDS": "5"}
    return launch_consumers(code_root, [(tmp / f"consumer{n}.log", env)
                                        for n in range(args.consumers)],
                            args.workers, args.worker_type)


def launch_consumers(code_root, consumers, workers, worker_type="thread"):
    """Start one `huey_consumer app.huey` per (log path, environment) and wait until each has
    started; returns the processes (each in a session of its own)."""
    procs = []
    for log, env in consumers:
        procs.append((subprocess.Popen(
            [str(Path(sys.executable).parent / "huey_consumer"), "app.huey", "-w",
             str(workers), "-k", worker_type, "--flush-locks", "-d", "0.05", "-m", "0.5"],
            cwd=code_root, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
            start_new_session=True), log))
    deadline = time.monotonic() + 30
    for proc, log in procs:
        while b"consumer started" not in log.read_bytes().lower():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("huey_consumer did not start:\n" + log.read_text())
            time.sleep(0.05)
    return [proc for proc, _ in procs]


def stop_consumers(procs):
    for proc in procs:
        os.killpg(proc.pid, signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def git_commands(trace):
    """Top-level git commands run, by name, from GIT_TRACE2's `cmd_name NAME (NAME)` lines
    (a child such as upload-pack is `cmd_name upload-pack (fetch/upload-pack)`)."""
    counts = Counter()
    if trace.exists():
        for line in trace.read_text(errors="replace").splitlines():
            parts = line.split()
            if "cmd_name" in parts:
                at = parts.index("cmd_name")
                if len(parts) > at + 2 and "/" not in parts[at + 2]:
                    counts[parts[at + 1]] += 1
                counts["processes"] += 1
    return counts


def login(client):
    token = client.post("/admin/api/login", json={"username": "bench",
                                                  "password": "bench-password"}).get_json()
    return {"X-CSRFToken": token["csrf_token"]}


def wait_until_delivered(args, name, links, expected_files, receiver):
    deadline = time.monotonic() + args.timeout
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        while True:
            synced, last_synced = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'synced'), "
                "extract(epoch FROM max(updated_at) FILTER (WHERE status = 'synced')) "
                "FROM app_repositories").fetchone()
            stats = receiver.stats()
            if synced == links and stats["files"] >= expected_files:
                return synced, last_synced, stats
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: not done after {args.timeout} s: {synced}/{links} "
                                   f"synced, {stats['files']}/{expected_files} files")
            time.sleep(0.1)


def run_once(args, name, code_root, repositories, apps, receiver, remote, client, tmp):
    from docora_admin.huey_app import huey

    links = len(apps) * len(repositories)
    expected_files = links * args.files
    expected_bytes = len(apps) * sum(size for _, size in repositories)
    seed(args.database_url, apps, repositories, receiver.base_url, remote)
    redis.Redis.from_url(args.redis_url).flushdb()
    headers = login(client)  # after the flush: the session lives in Redis
    shutil.rmtree(tmp / "git-cache", ignore_errors=True)
    trace = tmp / "git-trace"
    trace.unlink(missing_ok=True)
    receiver.reset()
    consumers = start_consumers(args, code_root, tmp, trace)
    profiles = Path(args.profile_dir or tmp)
    profiles.mkdir(parents=True, exist_ok=True)
    profilers = [subprocess.Popen(
        [args.py_spy, "record", "-p", str(p.pid), "-r", "200", "-f", "raw", "--gil", "-o",
         str(profiles / f"profile-{name}-{n}.txt"), "--nonblocking"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL) for n, p in enumerate(consumers)] if args.py_spy else []
    recorders = [perf_profile.record(p.pid, profiles / f"perf-{name}-{n}.data")
                 for n, p in enumerate(consumers)] if args.perf else []
    cpu_before = sum(cpu_seconds(p.pid) for p in consumers)
    own_cpu_before = sum(cpu_seconds(p.pid, children=False) for p in consumers)
    system_before = sum(cpu_seconds(p.pid, part="system") for p in consumers)
    switches_before = sum(context_switches(p.pid) for p in consumers)
    receiver_cpu_before = receiver.stats()["cpu_s"]
    remote_cpu_before = remote.cpu_seconds()
    services = Services(args.database_url, args.redis_url)
    services_before = services.now()
    try:
        started = time.time()
        response = client.post("/admin/api/retry/all", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        synced, last_synced, stats = wait_until_delivered(args, name, links, expected_files,
                                                          receiver)
        cpu = sum(cpu_seconds(p.pid) for p in consumers) - cpu_before
        own_cpu = sum(cpu_seconds(p.pid, children=False) for p in consumers) - own_cpu_before
        system = sum(cpu_seconds(p.pid, part="system") for p in consumers) - system_before
        switches = sum(context_switches(p.pid) for p in consumers) - switches_before
        remote_cpu = remote.cpu_seconds() - remote_cpu_before
        services_cpu = services.spent(services_before, services.now())
    finally:
        for recorder in recorders:
            perf_profile.stop(recorder)
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for profiler in profilers:
            profiler.wait(60)
        stop_consumers(consumers)
    huey.flush()
    for n in range(args.consumers):
        log = (tmp / f"consumer{n}.log").read_text(errors="replace").splitlines()
        problems = [line for line in log if "WARNING" in line or "ERROR" in line]
        if problems:
            print(f"consumer {n}: {len(problems)} warnings/errors, e.g. {problems[:3]}")
    for n in range(len(profilers)):
        print_profile(profiles / f"profile-{name}-{n}.txt", f"{name}, consumer {n}")
    for n in range(len(recorders)):
        perf_profile.print_report(profiles / f"perf-{name}-{n}.data", f"{name}, consumer {n}")
    seconds = max(float(last_synced), stats["last_file_at"]) - started
    git_counts = git_commands(trace)
    result = {
        "name": name, "seconds": seconds, "links": links, "files": stats["files"],
        "requests": stats["requests"], "megabytes": stats["bytes"] / 1e6,
        "connections": stats["connections"], "bad_signatures": stats["bad_signatures"],
        "cpu_s": cpu, "git_cpu_s": cpu - own_cpu, "system_cpu_s": system, "switches": switches,
        "receiver_cpu_s": stats["cpu_s"] - receiver_cpu_before,
        "remote_cpu_s": remote_cpu, "services_cpu_s": services_cpu, "git": git_counts,
        "expected_bytes": expected_bytes}
    result.update(ceiling(args, apps, repositories, receiver, remote))
    return result


def print_profile(path, title, top=25):
    """Where the consumer's sampled time went: per function, the share of samples in which it
    is on the stack (inclusive) and at the top (self), from py-spy's collapsed stacks, idle
    threads (waiting on the queue or a socket) included."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                  if " (" in f else f for f in stack.split(";")]
        count = int(count)
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    print(f"profile ({title}, {total} samples): inclusive | self")
    for frame, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f}% | {100 * own[frame] / total:5.1f}%  {frame}")
    print("  top self:")
    for frame, count in own.most_common(25):
        print(f"  {100 * count / total:5.1f}%  {frame}")


def payloads_of(repository_id, path, url):
    """The bodies the snapshot job sends for a first sync of the repository at `path`, made by
    the job's own payload code (docora_admin.services.delivery.payloads)."""
    from docora_admin.services.delivery import file_scan
    from docora_admin.services.delivery import payloads

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                            text=True, check=True).stdout.strip()
    repository = {"repository_id": repository_id, "github_url": url, "owner": "bench",
                  "name": path.name}
    bodies = []
    for scanned in file_scan.scan(path)[0]:
        data = file_scan.read_content(path, scanned.path)
        bodies.extend(payloads.file_bodies(repository, commit, scanned.path, scanned.sha, data))
    return bodies


def ceiling(args, apps, repositories, receiver, remote):
    """The receiver's own rate: the same requests from WORKERS × CONSUMERS keep-alive
    http.client connections, each request prepared (body and signature) before the clock."""
    bodies = [payloads_of(f"repo_bench_{r}", path, remote.url(path))
              for r, (path, _) in enumerate(repositories)]
    ts = str(int(time.time()))
    requests = []
    for app_id, secret in apps.items():
        for repo_bodies in bodies:
            for body in repo_bodies:
                signature = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body,
                                                 hashlib.sha256).hexdigest()
                requests.append((f"/{app_id}/create", body, {
                    "Content-Type": "application/json", "X-Docora-App-Id": app_id,
                    "X-Docora-Timestamp": ts, "X-Docora-Signature": signature}))
    threads = args.workers * args.consumers
    receiver.reset()
    errors = []

    def send(share):
        conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for path, body, headers in share:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(response.status)
        conn.close()

    workers = [threading.Thread(target=send, args=(requests[n::threads],))
               for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    stats = receiver.stats()
    assert not errors and stats["bad_signatures"] == 0, (errors[:5], stats)
    return {"ceiling_s": seconds, "ceiling_requests": stats["requests"],
            "ceiling_files": stats["files"], "ceiling_megabytes": stats["bytes"] / 1e6}


def report(result):
    r = result
    git_counts = ", ".join(f"{k} {v}" for k, v in sorted(r["git"].items()) if k != "processes")
    print(f"{r['name']:>8}: {r['seconds']:6.2f} s  {r['links'] / r['seconds']:6.1f} links/s  "
          f"{r['files'] / r['seconds']:7.1f} files/s  {r['megabytes'] / r['seconds']:5.1f} MB/s  "
          f"| consumer CPU {r['cpu_s']:.1f} s = {1000 * r['cpu_s'] / r['files']:.2f} ms/file "
          f"(git {1000 * r['git_cpu_s'] / r['files']:.2f}, the process's own in the kernel "
          f"{1000 * r['system_cpu_s'] / r['files']:.2f}; {r['switches'] / r['files']:.1f} "
          f"context switches/file), "
          f"receiver CPU {r['receiver_cpu_s']:.1f} s, the git remote's "
          f"{r['remote_cpu_s']:.1f} s, "
          + ", ".join(f"{name} {'?' if spent is None else format(spent, '.1f')} s"
                      for name, spent in r["services_cpu_s"].items())
          + f" (of {os.cpu_count() * r['seconds']:.1f} core-seconds) | {r['requests']} POSTs, "
          f"{r['connections']} new connections, {r['bad_signatures']} bad signatures | git: "
          f"{git_counts} ({r['git']['processes']} git processes) | ceiling "
          f"{r['ceiling_requests'] / r['ceiling_s']:.0f} req/s = "
          f"{r['ceiling_files'] / r['ceiling_s']:.0f} files/s, "
          f"{r['ceiling_megabytes'] / r['ceiling_s']:.1f} MB/s; delivered at "
          f"{100 * share_of_ceiling(r):.0f}% of it", flush=True)


def share_of_ceiling(r):
    """Files/s delivered as a share of the receiver's own files/s in the same run."""
    return (r["files"] / r["seconds"]) / (r["ceiling_files"] / r["ceiling_s"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--repositories", type=int, default=50)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--file-kb", type=float, default=16)
    parser.add_argument("--workers", type=int, default=8, help="threads per consumer")
    parser.add_argument("--consumers", type=int, default=1, help="huey_consumer processes")
    parser.add_argument("--packed", action="store_true",
                        help="repack the repositories after their commit, as a hosting "
                             "service keeps them (default: loose objects, as the issue measured)")
    parser.add_argument("--remote", choices=("daemon", "file"), default="daemon",
                        help="serve the repositories with git daemon (git://, a process of "
                             "its own: the default) or as file:// URLs (upload-pack runs "
                             "under the consumer and counts as its git CPU)")
    parser.add_argument("--worker-type", choices=("thread", "process"), default="thread",
                        help="huey_consumer -k: workers as threads of one process or processes")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--code", action="append", default=[],
                        help="NAME=PATH of a checkout whose code the consumers run "
                             "(default: this one)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--py-spy", metavar="PATH",
                        help="py-spy binary: sample the consumers during each run and print "
                             "where their time went (needs ptrace rights, e.g. root)")
    parser.add_argument("--perf", action="store_true",
                        help="sample each consumer and its git children with Linux perf "
                             "(bench/perf_profile.py): CPU by command, code and system call")
    parser.add_argument("--profile-dir", metavar="DIR",
                        help="keep py-spy's collapsed stacks there (default: deleted)")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    codes = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.code] \
        or [("this", ROOT)]

    os.environ.update(app_env(args))  # before docora_admin.huey_app reads REDIS_URL
    ensure_database(args.database_url)
    # Two runs at once on one database and Redis db would empty each other's tables.
    guard = psycopg.connect(args.database_url, autocommit=True)
    if not guard.execute("SELECT pg_try_advisory_lock(12012)").fetchone()[0]:
        sys.exit("another retry_to_delivered run is using this database; wait for it")
    from docora_admin import create_app, db

    db.migrate(args.database_url)
    app = create_app(app_env(args))
    client = app.test_client()

    tmp = Path(tempfile.mkdtemp(prefix="docora-throughput-bench-"))
    repositories = make_repositories(tmp / "repos", args.repositories, args.files, args.file_kb,
                                     random.Random(7), args.packed)
    apps = {f"app_bench_{n:02d}": f"bench-client-key-{n}" for n in range(args.apps)}
    receiver = ReceiverProcess(apps, tmp)
    try:
        remote = GitDaemon(tmp / "repos") if args.remote == "daemon" else FileRemote()
    except BaseException:
        receiver.close()
        raise
    total_mb = len(apps) * sum(size for _, size in repositories) / 1e6
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.apps} apps × "
          f"{args.repositories} repositories = {args.apps * args.repositories} links, "
          f"{args.files} files each ({args.apps * args.repositories * args.files} files, "
          f"{total_mb:.0f} MB, {'packed' if args.packed else 'loose objects'}, "
          f"{'git daemon' if args.remote == 'daemon' else 'file://'} remote); "
          f"{args.consumers} consumer(s) × {args.workers} {args.worker_type} workers; per-app "
          f"limits: APP_RATE_PER_SECOND={os.environ.get('APP_RATE_PER_SECOND', 'default')}, "
          f"APP_MAX_CONCURRENCY={os.environ.get('APP_MAX_CONCURRENCY', 'default')}; "
          f"code: {', '.join(f'{n}={p}' for n, p in codes)}", flush=True)
    results = []
    try:
        for _ in range(args.repeat):
            for name, code_root in codes:
                result = run_once(args, name, code_root, repositories, apps, receiver, remote,
                                  client, tmp)
                report(result)
                results.append(result)
    finally:
        receiver.close()
        remote.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.repeat > 1 or len(codes) > 1:
        print("medians:")
        for name, _ in codes:
            mine = [r for r in results if r["name"] == name]
            seconds = statistics.median(r["seconds"] for r in mine)
            cpu = statistics.median(1000 * r["cpu_s"] / r["files"] for r in mine)
            git_cpu = statistics.median(1000 * r["git_cpu_s"] / r["files"] for r in mine)
            share = statistics.median(share_of_ceiling(r) for r in mine)
            ceiling_rate = statistics.median(r["ceiling_requests"] / r["ceiling_s"] for r in mine)
            print(f"{name:>8}: {seconds:6.2f} s = {mine[0]['links'] / seconds:.1f} links/s, "
                  f"{mine[0]['files'] / seconds:.0f} files/s, "
                  f"{mine[0]['megabytes'] / seconds:.1f} MB/s; consumer CPU {cpu:.2f} ms/file "
                  f"(git {git_cpu:.2f}); receiver ceiling {ceiling_rate:.0f} req/s, delivered "
                  f"at {100 * share:.0f}% of it (runs: "
                  f"{', '.join(format(r['seconds'], '.2f') for r in mine)})")


if __name__ == "__main__":
    main()
