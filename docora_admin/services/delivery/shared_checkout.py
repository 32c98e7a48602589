"""One fetch and one scan of a repository's commit for all the links that need it.

A retry-all queues the link of every app to a repository; each job used to fetch and scan on its
own (1,000 fetches for 50 repositories, 5 git processes a job). Now:
- where the remote's HEAD is, is asked at most once per GIT_SHARE_SECONDS per repository (one
  `git ls-remote`), and the answer is shared through Redis by every process; a machine with no
  checkout of the repository yet does not ask: it clones, and the clone is its look;
- the cached checkout is fetched only when it does not hold that commit;
- a commit is scanned once per process: the scan is kept in memory, keyed by repository and
  commit (a commit never changes, so the key says everything).
An observation serves a link only if it was made after the link's job became due (a retry
pressed after a push always sees the push) and within the last GIT_SHARE_SECONDS (0: every job
asks): a link is delivered its repository as the remote had it at some moment between its job
becoming due and its start, at most GIT_SHARE_SECONDS before the start, as if the job had run a
little earlier. A repository that moved on since is seen by the jobs after the window and
fetched again.

Every time here (a look's, the link's due time, now) is PostgreSQL's clock (shared_clock):
machines whose wall clocks disagree still agree on which look is newer than which link.

The repository lock (services/delivery/git_fetch.py) is held only to check the checkout's commit (or
fetch it), scan a new commit and read the contents this link needs; the delivery runs without it.
"""
import hashlib
from dataclasses import dataclass

from ... import runtime, shared_clock
from . import file_scan, git_fetch
from .sized_lru import SizedLRU

HEAD_KEY = "docora:repo-head:{}"
# Scans kept per process, counted in files: 50 repositories of 20 files take 1,000; a large
# monorepo's commit may take 100,000 (about 20 MB of memory).
SCAN_CACHE_FILES = 500_000


@dataclass(frozen=True)
class Commit:
    sha: str
    files: tuple  # file_scan.ScannedFile, sorted by path
    skipped: tuple = ()  # file_scan.SkippedFile: files that cannot be sent, and why

    def __len__(self):  # its weight in the scan cache
        return len(self.files) + len(self.skipped)


# Least recently used scans, (repository_id, commit sha) → Commit, up to a file budget.
_scans = SizedLRU(SCAN_CACHE_FILES)


def remote_head(repository_id, url, token, not_before):
    """The remote HEAD's commit, as observed by any process after `not_before` (Unix time by
    PostgreSQL's clock) and within the last GIT_SHARE_SECONDS, else asked now (and shared)."""
    sha = _shared_head(repository_id, not_before)
    if sha is not None:
        return sha
    observed_at = shared_clock.now()
    sha = git_fetch.remote_head(url, token)
    _observed(HEAD_KEY.format(repository_id), sha, observed_at,
              runtime.settings().git_share_seconds)
    return sha


def _shared_head(repository_id, not_before):
    """The commit of an observation of the remote's HEAD that may serve this link, or None."""
    window = runtime.settings().git_share_seconds
    if not window:
        return None
    key = HEAD_KEY.format(repository_id)
    # This process's own last observation first (no round trip), then every process's.
    sha = _fresh(_heads.get(key), not_before, window)
    if sha is None:
        seen = runtime.redis_client().get(key)
        sha = _fresh(seen, not_before, window)
        if sha is not None:
            _remember(key, seen)
    return sha


_heads = {}  # HEAD_KEY → the last observation this process made or read, as Redis holds it
HEADS_REMEMBERED = 100_000


def _fresh(seen, not_before, window):
    """The commit of an observation (b"sha observed_at") made after `not_before` and within the
    last `window` seconds, else None."""
    if seen:
        sha, _, observed_at = seen.decode().partition(" ")
        if not_before <= float(observed_at) and (
                shared_clock.now() - float(observed_at) <= window):
            return sha
    return None


def _remember(key, seen):
    if len(_heads) >= HEADS_REMEMBERED:
        _heads.clear()
    _heads[key] = seen


def _observed(key, sha, observed_at, window):
    if window:
        seen = f"{sha} {observed_at:.6f}".encode()
        runtime.redis_client().set(key, seen, px=window * 1000)
        _remember(key, seen)


def read(repository_id, url, token, not_before, wanted, give_back=None):
    """The repository at its remote's HEAD as it was after `not_before` (Unix time: when the
    link's job became due): (Commit, {path: bytes}) with the contents of the files
    `wanted(files)` picks (an iterable of ScannedFile). Fetches only when the cached checkout is
    not at that commit; raises git_fetch.RepositoryBusy when another job holds the checkout for
    too long, git_fetch.RepositoryFetching when another job is fetching it and `give_back()`
    says to give the worker back (git_fetch.repository_lock)."""
    head = _shared_head(repository_id, not_before)
    if head is None and git_fetch.checkout_commit(repository_id) is None:
        # No checkout here to compare a look at the remote with: the fetch is that look (a
        # `git ls-remote` first was one more git process per repository on a first sync).
        # Another job may have fetched meanwhile: its look serves this link as any would.
        with git_fetch.repository_lock(repository_id, give_back):
            return _read_locked(repository_id, url, token,
                                _shared_head(repository_id, not_before), not_before, wanted)
    if head is None:
        head = remote_head(repository_id, url, token, not_before)
    # Most links find the checkout already at that commit, scanned by this process: their files
    # are read without the lock (two Redis round trips, and the wait while the other apps' jobs
    # of the repository hold it). A fetch into the checkout meanwhile makes a file read differ
    # from the scan (or vanish), and the link takes the locked way below.
    if (git_fetch.checkout_commit(repository_id) == head
            and _scans.get((repository_id, head)) is not None):
        commit, contents = _read_checkout(repository_id, head, wanted)
        if contents is not None:
            return commit, contents
    with git_fetch.repository_lock(repository_id, give_back):
        return _read_locked(repository_id, url, token, head, not_before, wanted)


def _read_locked(repository_id, url, token, head, not_before, wanted):
    """read(), under the repository's lock: fetch unless the checkout is at `head` (`head`
    None: fetch whatever the remote has now), or at a commit another job fetched meanwhile
    with a look that serves this link too."""
    sha = git_fetch.checkout_commit(repository_id)
    if head is None or sha != head:
        if sha is None or head is None or sha != _shared_head(repository_id, not_before):
            sha = _fetch(repository_id, url, token)
    commit, contents = _read_checkout(repository_id, sha, wanted)
    if contents is None:
        # The work tree no longer matches its commit's scan (changed behind git's back):
        # fetch it again rather than send a file under another file's sha.
        commit, contents = _read_checkout(repository_id, _fetch(repository_id, url, token),
                                          wanted)
        if contents is None:
            raise git_fetch.GitError("git: the checkout changes while it is read")
    return commit, contents


def _fetch(repository_id, url, token):
    observed_at = shared_clock.now()
    _, sha = git_fetch.fetch(url, repository_id, token)
    _observed(HEAD_KEY.format(repository_id), sha, observed_at,
              runtime.settings().git_share_seconds)
    return sha


def _read_checkout(repository_id, sha, wanted):
    """(Commit, contents) of the checkout at `sha`, scanned once per process; contents None
    when a file read does not match the scan."""
    root = git_fetch.checkout_path(repository_id)
    commit = _scans.get((repository_id, sha))
    if commit is None:
        files, skipped = file_scan.scan(root)
        commit = Commit(sha, tuple(files), tuple(skipped))
        _scans.put((repository_id, sha), commit)
    contents = {}
    for f in wanted(commit.files):
        try:
            data = file_scan.read_content(root, f.path)
        except OSError:
            data = None
        if data is None or hashlib.sha256(data).hexdigest() != f.sha:
            _scans.drop((repository_id, sha))
            return None, None
        contents[f.path] = data
    return commit, contents
