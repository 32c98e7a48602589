"""Fetching a repository with git into a cache folder, one job per repository at a time, and
asking a remote where its HEAD is (one cheap `git ls-remote`, no lock, nothing written)."""
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from ...redact import scrub

GIT_TIMEOUT_S = 300
# A checkout's folder name under cache_root(): checkout_name(repository_id).
_CHECKOUT_NAME = re.compile(r"[0-9a-f]{32}")
# How long a job waits for another job's fetch of the same repository before it gives its
# worker back (the link is queued again a little later): a worker never sits out a long fetch.
LOCK_WAIT_S = 5
# How often a waiting job tries the lock again. The lock is mostly held for a few milliseconds
# (reading files of a checkout already at the right commit): a waiter must not sit out far
# more than the holder needs.
LOCK_POLL_S = 0.005
# Written into .git of a checkout once a fetch has brought it to a commit: which commit the work
# tree holds, read without running git.
_COMMIT_FILE = "docora-commit"


class GitError(Exception):
    """git failed; the message is short, human readable and free of credentials."""


class RepositoryBusy(Exception):
    """Another job held the repository's checkout for longer than LOCK_WAIT_S: nothing was
    attempted, so nothing is counted or logged against the app."""


class RepositoryFetching(RepositoryBusy):
    """Another job of this machine is fetching the repository and the caller chose to give its
    worker back rather than wait (repository_lock's give_back)."""


def cache_root():
    setting = os.environ.get("DOCORA_GIT_CACHE") or "var/git-cache"
    key = setting if os.path.isabs(setting) else (setting, os.getcwd())
    root = _roots.get(key)
    if root is None:  # resolved once (a job asks several times; each walks the path)
        root = _roots[key] = Path(setting).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


_roots = {}


def authenticated_url(url, token):
    """https URLs get the token as x-access-token; other URLs (file://, paths) go unchanged."""
    parts = urlsplit(url)
    if not token or parts.scheme != "https":
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"x-access-token:{quote(token, safe='')}@{host}"))


@contextmanager
def repository_lock(repository_id, give_back=None):
    """One job at a time works on a repository's checkout, among the processes that share this
    cache folder (a machine's consumers): an exclusive flock(2) of a file beside the checkout.
    The checkout is the machine's, so is its lock: another machine, with a checkout of its own,
    never waits for it, and the kernel releases it the moment its holder dies (no time to live,
    nothing to renew). RepositoryBusy after LOCK_WAIT_S.

    `give_back`: asked once, when the holder is fetching (a fetch takes seconds; reading a
    checkout, milliseconds); when it answers true, RepositoryFetching at once instead of the
    wait, so the worker can take other work meanwhile."""
    name = checkout_name(repository_id)
    fd = os.open(cache_root() / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                # Each call opens the file anew, so two threads of one process exclude each
                # other too (a flock belongs to the open file, not to the process).
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if give_back is not None:
                    asked, give_back = give_back, None
                    if (cache_root() / f"{name}.fetching").exists() and asked():
                        raise RepositoryFetching(
                            f"repository {repository_id} is being fetched") from None
                if time.monotonic() >= deadline:
                    raise RepositoryBusy(f"repository {repository_id} is busy") from None
                time.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # and with it the lock


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


def checkout_name(repository_id):
    """The name of a repository's checkout under cache_root()."""
    return hashlib.sha256(repository_id.encode()).hexdigest()[:32]


def checkout_path(repository_id):
    return cache_root() / checkout_name(repository_id)


def checkout_names():
    """The names of the checkouts this machine's cache holds."""
    return {entry.name for entry in cache_root().iterdir()
            if entry.is_dir() and _CHECKOUT_NAME.fullmatch(entry.name)}


def remove_checkout_named(name):
    """Remove a checkout by name: one of a repository that no longer exists (its id is not
    known any more; a job of it has lost its link and records nothing)."""
    if _CHECKOUT_NAME.fullmatch(name):
        shutil.rmtree(cache_root() / name, ignore_errors=True)


def remove_checkout(repository_id):
    """Remove this machine's checkout of a repository nobody follows any more, under its lock
    (a job still reading it finishes first). Returns whether it is gone; False when the lock
    stayed busy (the checkout stays; nothing reads it again)."""
    try:
        with repository_lock(repository_id):
            shutil.rmtree(checkout_path(repository_id), ignore_errors=True)
    except RepositoryBusy:
        return False
    return not checkout_path(repository_id).exists()


def checkout_commit(repository_id):
    """The commit the cached checkout of `repository_id` holds, or None when there is none (or
    a fetch into it did not finish). Call inside repository_lock()."""
    try:
        return (checkout_path(repository_id) / ".git" / _COMMIT_FILE).read_text().strip() or None
    except OSError:
        return None


def remote_head(url, token=None):
    """The commit the remote's HEAD points at now (`git ls-remote`: one process, no objects
    transferred, no lock needed)."""
    out = _git(["ls-remote", "--quiet", authenticated_url(url, token), "HEAD"])
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == "HEAD":
            return sha
    raise GitError("git: the remote has no HEAD (an empty repository?)")


def fetch(url, repository_id, token=None):
    """Bring the cached checkout of `repository_id` to the remote's HEAD; return
    (path, commit_sha). Call inside repository_lock()."""
    # Beside the lock, while the fetch runs: a job that finds the lock taken learns it will be
    # held for seconds (repository_lock's give_back). Left behind by a death, it only makes a
    # waiter ask whether to give its worker back; the lock itself is free.
    fetching = cache_root() / f"{checkout_name(repository_id)}.fetching"
    fetching.touch()
    try:
        return _fetch_locked(checkout_path(repository_id), authenticated_url(url, token))
    finally:
        fetching.unlink(missing_ok=True)


def _fetch_locked(target, remote):
    # Until this fetch is through, the work tree holds no known commit (a crash half way must
    # not leave the old commit's name on a changed tree).
    (target / ".git" / _COMMIT_FILE).unlink(missing_ok=True)
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
        # No template: the sample hooks and the like are a dozen more files to create per
        # clone (a retry-all clones every repository), and nothing here uses them.
        _git(["clone", "--depth", "1", "--quiet", "--no-tags", "--template=", remote,
              str(target)])
    commit_sha = _git(["rev-parse", "HEAD"], cwd=target)
    (target / ".git" / _COMMIT_FILE).write_text(commit_sha)
    return target, commit_sha
