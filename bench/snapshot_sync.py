"""Benchmark: sync a 1,000-file, 20 MB repository to a local receiver.

    .venv/bin/python bench/snapshot_sync.py [--files 1000] [--megabytes 20] [--loose]
        [--receiver-process] [--code PATH]

Makes a git repository (mixed text and binary files, a few binaries over 1 MiB so chunking is
exercised) in a temp folder, a receiver that checks every signature (tests/webhook_receiver.py,
in this process), and a link in a database of its own; then times the snapshot job for a first
sync, a 1% change and a re-sync with no change, and reports files/s and MB/s, and how much of
each sync was git (the look at the remote's HEAD, and the clone or fetch and checkout) and how
much the delivery (the rest: scan, diff, the POSTs and their records), with the delivery's own
files/s.

The repository is repacked after each commit (`git repack -a -d`), as a hosting service keeps
one and serves it packed; --loose leaves its objects loose (the default before issue 25): a
shallow clone of loose objects makes this machine delta-search and compress them for the pack
it sends, about 1 s of the first sync here, which a real remote does not cost us. --code PATH runs the snapshot job of another checkout (e.g. `git
worktree add /work/wt-before 34979ec`), with this checkout's receiver.

--receiver-process runs the receiver in a process of its own (bench/keepalive_receiver.py, the
one bench/retry_to_delivered.py uses: it checks every signature and counts files and bytes)
rather than in this one, where its request handling shares this process's GIL with the job.

The per-app limits are the consumer's (APP_RATE_PER_SECOND, APP_MAX_CONCURRENCY from the
environment); with a rate limit, a first sync takes at least files / rate seconds.

Measured on a 2-core machine (issue 25), packed, first sync, two runs each: 58974bf 1.10 s
(git 0.14–0.17 s, delivery 0.94–0.97 s = 1,030–1,070 files/s, ~20.5 MB/s), after issue 25
1.09–1.11 s (git 0.16–0.17 s, delivery 0.92–0.96 s = 1,046–1,082 files/s): one link with the
receiver in this process is bound by the receiver, not by the job's per-request costs. --loose:
2.26 s, of which git 1.32 s. A 1% change: 0.19 s (git 0.13 s); a re-sync with no change: 0.01 s.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/docora_admin_bench_snapshot"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"
KEY = "bench-client-key"


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com",
                            GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com"))


def make_repo(path, files, megabytes, rng, packed):
    """`files` files adding up to about `megabytes` MB: 70% text, 30% binary, 3 big binaries."""
    path.mkdir(parents=True)
    big = [1_500_000, 1_200_000, 1_100_000]
    budget = megabytes * 1_000_000 - sum(big)
    sizes = [max(200, int(rng.expovariate(1) * budget / files)) for _ in range(files - 3)]
    for i, size in enumerate(sizes):
        folder = path / f"dir{i % 20}"
        folder.mkdir(exist_ok=True)
        if i % 10 < 7:
            line = f"line {i} of the documentation, with some words to make it text.\n"
            (folder / f"doc{i}.md").write_text(line * (size // len(line) + 1))
        else:
            (folder / f"blob{i}.bin").write_bytes(rng.randbytes(size))
    for j, size in enumerate(big):
        (path / f"big{j}.bin").write_bytes(rng.randbytes(size))
    git("init", "--quiet", "-b", "main", cwd=path)
    git("add", "-A", cwd=path)
    git("commit", "--quiet", "-m", "bench", cwd=path)
    if packed:
        git("repack", "-a", "-d", "-q", cwd=path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and ".git" not in f.parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--megabytes", type=int, default=20)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--loose", action="store_true",
                        help="leave the repository's objects loose (default: repacked after "
                             "each commit, as a host keeps it)")
    parser.add_argument("--receiver-process", action="store_true",
                        help="the receiver in a process of its own, not sharing the job's GIL")
    parser.add_argument("--code", metavar="PATH", default=str(ROOT),
                        help="the checkout whose snapshot job runs (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, args.code)

    sys.path.insert(0, str(ROOT / "bench"))
    import bulk_retry  # database helpers

    bulk_retry.ensure_database(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="docora-snapshot-bench-"))
    os.environ.update({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                       "SECRET_KEY": "bench-secret-key-123456", "ADMIN_USERNAME": "bench",
                       "ADMIN_PASSWORD": "bench-password", "ENCRYPTION_KEY": "0f" * 32,
                       "DOCORA_GIT_CACHE": str(tmp / "cache"),
                       "ALLOW_PRIVATE_WEBHOOKS": "true"})  # the receiver is on 127.0.0.1
    from docora_admin import create_app, crypto, db
    from docora_admin.services.delivery import git_fetch, snapshot
    Receiver = _receiver_class()

    db.migrate(args.database_url)
    create_app()
    rng = random.Random(7)
    repo = tmp / "repo"
    packed = not args.loose
    size = make_repo(repo, args.files, args.megabytes, rng, packed)
    if args.receiver_process:
        from retry_to_delivered import ReceiverProcess
        receiver = _Counted(ReceiverProcess({"app_bench": KEY}, tmp), "app_bench")
    else:
        receiver = Receiver(auth_key=KEY)
    with db.connection() as conn:
        conn.execute("TRUNCATE apps, repositories, app_repositories, app_delivered_files, "
                     "repository_snapshots CASCADE")
        conn.execute("INSERT INTO apps (app_id, app_name, base_url, token_hash, "
                     "client_auth_key_encrypted) VALUES ('app_bench', 'Bench', %s, 'x', %s)",
                     (receiver.base_url, crypto.encrypt(bytes.fromhex("0f" * 32), KEY)))
        conn.execute("INSERT INTO repositories (repository_id, github_url, owner, name) "
                     "VALUES ('repo_bench', %s, 'bench', 'repo')", (repo.as_uri(),))
        conn.execute("INSERT INTO app_repositories (app_id, repository_id, status) "
                     "VALUES ('app_bench', 'repo_bench', 'pending_snapshot')")

    fetching = [0.0]

    def timed(function):
        def timed_call(*a, **k):
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                fetching[0] += time.perf_counter() - started
        return timed_call

    # The job looks them up on the module, whichever code runs: the look at the remote's HEAD
    # (git ls-remote) and the fetch count as git time.
    git_fetch.fetch = timed(git_fetch.fetch)
    git_fetch.remote_head = timed(git_fetch.remote_head)

    def timed_sync(label):
        with db.connection() as conn:
            conn.execute("UPDATE app_repositories SET status = 'pending_snapshot'")
        receiver.clear()
        fetching[0] = 0.0
        start = time.perf_counter()
        status = snapshot.run_snapshot("app_bench", "repo_bench")
        seconds = time.perf_counter() - start
        files, megabytes, posts, bad = receiver.counts()
        delivering = seconds - fetching[0]
        print(f"{label:<22} {status:<8} {seconds:7.2f} s  {files:5d} files "
              f"({files / seconds:7.1f}/s)  {megabytes:6.1f} MB ({megabytes / seconds:5.1f} MB/s)"
              f"  {posts} POSTs, {bad} bad signatures; git {fetching[0]:.2f} s, delivery "
              f"{delivering:.2f} s ({files / delivering if delivering > 0 else 0:.1f} files/s, "
              f"{megabytes / delivering if delivering > 0 else 0:.1f} MB/s)")

    print(f"repository: {args.files} files, {size / 1e6:.1f} MB, "
          f"{'packed' if packed else 'loose objects'}; receiver and git on this machine "
          f"(file:// remote); code: {args.code}; APP_RATE_PER_SECOND="
          f"{os.environ.get('APP_RATE_PER_SECOND', 'default')}")
    timed_sync("first sync")
    changed = rng.sample(sorted(p for p in repo.rglob("*.md")), max(1, args.files // 100))
    for path in changed:
        path.write_text(path.read_text() + "changed\n")
    git("commit", "--quiet", "-am", "1% change", cwd=repo)
    if packed:
        git("repack", "-a", "-d", "-q", cwd=repo)
    timed_sync("1% change")
    timed_sync("re-sync, no change")
    receiver.close()


class _Counted:
    """bench/keepalive_receiver.py in its own process, counted as the in-process one is."""

    def __init__(self, process, app_id):
        self.process = process
        self.base_url = f"{process.base_url}/{app_id}"

    def clear(self):
        self.process.reset()

    def counts(self):
        stats = self.process.stats()
        return stats["files"], stats["bytes"] / 1e6, stats["requests"], stats["bad_signatures"]

    def close(self):
        self.process.close()


def _receiver_class():
    """tests/webhook_receiver.Receiver of this checkout, whichever code runs the job."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_webhook_receiver",
                                                  ROOT / "tests" / "webhook_receiver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    class Receiver(module.Receiver):
        def clear(self):
            self.requests.clear()

        def counts(self):
            sent = [p for _, p in self.requests]
            return (len({p["file"]["path"] for p in sent}),
                    sum(p["file"]["size"] for p in sent
                        if p["file"].get("chunk", {}).get("index", 0) == 0) / 1e6,
                    len(sent), self.bad_signatures)

    return Receiver


if __name__ == "__main__":
    main()
