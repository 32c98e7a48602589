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
LOCK_TIMEOUT_S = 900  # longer than any fetch + scan; a dead holder frees it by expiry


class GitError(Exception):
    """git failed; the message is short, human readable and free of credentials."""


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
    lock = runtime.redis_client().lock(f"docora:git-lock:{repository_id}",
                                       timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S)
    if not lock.acquire():
        raise GitError("git: repository is busy (lock not acquired)")
    try:
        yield
    finally:
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
