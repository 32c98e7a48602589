"""What an app has acknowledged of a repository: noted in Redis the moment the app answers, written
to app_delivered_files (PostgreSQL) in batches.

One commit per delivered file cost a job ~1 ms of PostgreSQL round trips and a WAL flush per
file. Now each acknowledgement is one Redis HSET (a fraction of that) into the link's journal,
`docora:acked:{app_id}:{repository_id}` (path → sha, "" for a deleted path), and PostgreSQL gets
them BATCH_FILES at a time in one transaction, after which they leave the journal. A worker
killed between two batches leaves its acknowledgements in the journal: the link's next job
writes them to PostgreSQL before it diffs (settle_journal), so it resends only what the app did
not acknowledge. Should Redis lose the journal (a restart without persistence), those files are
sent again: at least once, as before.
"""
import threading

from .. import db, runtime
from ..repositories import delivered_files

BATCH_FILES = 200
# A journal outlives a failed link's backoff by far; it is written to PostgreSQL by the link's
# next job whenever that comes, and only forgotten if no job comes for this long.
JOURNAL_TTL_S = 30 * 86400
_DELETED = ""


def journal_key(app_id, repository_id):
    return f"docora:acked:{app_id}:{repository_id}"


def note(app_id, repository_id, path, sha, first=False):
    """The app acknowledged `path` at `sha` (None: its delete). The first note of an attempt
    also sets the journal's time to live (one command per file is what this is about)."""
    key = journal_key(app_id, repository_id)
    if first:
        pipe = runtime.redis_client().pipeline(transaction=False)
        pipe.hset(key, path, sha or _DELETED)
        pipe.expire(key, JOURNAL_TTL_S)
        pipe.execute()
    else:
        runtime.redis_client().hset(key, path, sha or _DELETED)


def write(conn, app_id, repository_id, acknowledged):
    """Write {path: sha or None} to app_delivered_files in the caller's transaction."""
    delivered_files.record_many(
        conn, app_id, repository_id,
        [(path, sha) for path, sha in acknowledged.items() if sha],
        [path for path, sha in acknowledged.items() if not sha])


def forget(app_id, repository_id, paths):
    """Take written acknowledgements out of the journal (call after the commit)."""
    if paths:
        runtime.redis_client().hdel(journal_key(app_id, repository_id), *paths)


def drop_journals(links):
    """Forget the unwritten acknowledgements of [(app_id, repository_id)] (a re-sync: the app's
    record of those links is cleared, and these would put part of it back)."""
    if links:
        runtime.redis_client().delete(*(journal_key(a, r) for a, r in links))


def settle_journal(conn, app_id, repository_id):
    """Write what an earlier job noted but did not write (it died between batches); returns
    the paths, to forget() once the caller's transaction has committed."""
    noted = runtime.redis_client().hgetall(journal_key(app_id, repository_id))
    acknowledged = {path.decode(): sha.decode() or None for path, sha in noted.items()}
    write(conn, app_id, repository_id, acknowledged)
    return list(acknowledged)


class Batch:
    """The acknowledgements of one attempt not yet written to PostgreSQL, from any number of
    threads. `patiently(action)` runs each Redis or PostgreSQL step (the job's way of waiting
    out an outage)."""

    def __init__(self, app_id, repository_id, patiently):
        self.app_id, self.repository_id = app_id, repository_id
        self.patiently = patiently
        self.lock = threading.Lock()
        self.pending = {}
        self.expiry_set = False

    def acknowledged(self, path, sha):
        """Note one acknowledgement at once; write a batch when BATCH_FILES are waiting."""
        with self.lock:
            first, self.expiry_set = not self.expiry_set, True
        self.patiently(lambda: note(self.app_id, self.repository_id, path, sha, first))
        with self.lock:
            self.pending[path] = sha
            full = len(self.pending) >= BATCH_FILES
            if full:
                pending, self.pending = self.pending, {}
        if full:
            self._write(pending)

    def flush(self):
        """Write what is waiting in one transaction, then take it out of the journal."""
        with self.lock:
            pending, self.pending = self.pending, {}
        if pending:
            self._write(pending)

    def _write(self, pending):
        def write_batch():
            with db.connection() as conn:
                write(conn, self.app_id, self.repository_id, pending)

        self.patiently(write_batch)
        self.patiently(lambda: forget(self.app_id, self.repository_id, list(pending)))
