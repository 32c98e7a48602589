"""Fetching a repository with git into a cache folder, one job per repository at a time."""
import hashlib
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from .. import runtime
from ..redact import scrub

GIT_TIMEOUT_S = 300
# The lock's time to live: renewed by the watchdog while its holder lives (services/leases.py),
# so a holder that dies frees the repository within this, not after its longest fetch.
LOCK_TTL_S = 15
# How long a job waits for another job's fetch of the same repository before it gives its
# worker back (the link is queued again a little later): a worker never sits out a long fetch.
LOCK_WAIT_S = 5


class GitError(Exception):
    """git failed; the message is short, human readable and free of credentials."""


class RepositoryBusy(Exception):
    """Another job held the repository's checkout for longer than LOCK_WAIT_S: nothing was
    attempted, so nothing is counted or logged against the app."""


def cache_root():
    root = Path(os.environ.get("DOCORA_GIT_CACHE") or "var/git-cache").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def authenticated_url(url, token):
    """https URLs get the token as x-access-token; other URLs (file://, paths) go unchanged."""
    parts = urlsplit(url)
    if not token or parts.scheme != "https":
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"x-access-token:{quote(token, safe='')}@{host}"))


@contextmanager
def repository_lock(repository_id):
    """Across processes and machines, one job at a time works on a repository's checkout."""
    from . import leases

    # Not thread-local: the watchdog thread renews it for the job's thread.
    ttl = max(LOCK_TTL_S, 3 * runtime.settings().watchdog_interval_seconds)
    lock = runtime.redis_client().lock(f"docora:git-lock:{repository_id}", timeout=ttl,
                                       blocking_timeout=LOCK_WAIT_S, thread_local=False)
    if not lock.acquire():
        raise RepositoryBusy(f"repository {repository_id} is busy")
    leases.hold_lock(lock)
    try:
        yield
    finally:
        leases.release_lock(lock)
        try:
            lock.release()
        except Exception:  # expired meanwhile: nothing left to release
            pass


def _git(args, cwd=None):
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", LC_ALL="C")
    try:
        result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise GitError(f"git: timeout after {GIT_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise GitError(_describe(result.stderr))
    return result.stdout.strip()


def _describe(stderr):
    text = scrub(stderr).lower()
    if any(s in text for s in ("not found", "does not exist", "not appear to be a git",
                               "no such file")):
        return "git: repository not found"
    if "authentication failed" in text or "could not read username" in text:
        return "git: authentication failed"
    if "could not resolve host" in text:
        return "git: could not resolve host"
    first = next((line for line in scrub(stderr).splitlines() if line.strip()), "unknown error")
    return f"git: {first.strip()[:200]}"


def fetch(url, repository_id, token=None):
    """Bring the cached checkout of `repository_id` to the remote's HEAD; return
    (path, commit_sha). Call inside repository_lock()."""
    target = cache_root() / hashlib.sha256(repository_id.encode()).hexdigest()[:32]
    remote = authenticated_url(url, token)
    if (target / ".git").is_dir():
        try:
            # The token can change between runs: set the remote each time, never log it.
            _git(["remote", "set-url", "origin", remote], cwd=target)
            _git(["fetch", "--depth", "1", "--quiet", "origin", "HEAD"], cwd=target)
            _git(["reset", "--hard", "--quiet", "FETCH_HEAD"], cwd=target)
            _git(["clean", "-fdxq"], cwd=target)
        except GitError:
            shutil.rmtree(target, ignore_errors=True)
            raise
    else:
        shutil.rmtree(target, ignore_errors=True)
        _git(["clone", "--depth", "1", "--quiet", "--no-tags", remote, str(target)])
    return target, _git(["rev-parse", "HEAD"], cwd=target)
