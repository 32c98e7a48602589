"""What an app has acknowledged of a repository: noted in Redis the moment the app answers, written
to app_delivered_files (PostgreSQL) in batches.

One commit per delivered file cost a job ~1 ms of PostgreSQL round trips and a WAL flush per
file. Now each acknowledgement is one Redis HSET into the link's journal,
`docora:acked:{app_id}:{repository_id}` (path → sha, "" for a deleted path), pipelined on the
job's own connection (_Notes), and PostgreSQL gets them BATCH_FILES at a time in one
transaction (the last ones with the link's outcome), after which they leave the journal. A worker
killed between two batches leaves its acknowledgements in the journal: the link's next job
writes them to PostgreSQL before it diffs (unwritten, write), so it resends only what the app did
not acknowledge. Should Redis lose the journal (a restart without persistence), those files are
sent again: at least once, as before.
"""
import threading

import redis

from ... import db, runtime
from ...repositories import delivered_files

BATCH_FILES = 200
# A journal outlives a failed link's backoff by far; it is written to PostgreSQL by the link's
# next job whenever that comes, and only forgotten if no job comes for this long.
JOURNAL_TTL_S = 30 * 86400
_DELETED = ""


def journal_key(app_id, repository_id):
    return f"docora:acked:{app_id}:{repository_id}"


def write(conn, app_id, repository_id, acknowledged):
    """Write {path: sha or None} to app_delivered_files in the caller's transaction."""
    delivered_files.record_many(
        conn, app_id, repository_id,
        [(path, sha) for path, sha in acknowledged.items() if sha],
        [path for path, sha in acknowledged.items() if not sha])


def forget(app_id, repository_id, paths, client=None):
    """Take written acknowledgements out of the journal (call after the commit); `client` may
    be a pipeline to add the command to."""
    if paths:
        (client or runtime.redis_client()).hdel(journal_key(app_id, repository_id), *paths)


def drop_journals(links):
    """Forget the unwritten acknowledgements of [(app_id, repository_id)] (a re-sync: the app's
    record of those links is cleared, and these would put part of it back)."""
    if links:
        runtime.redis_client().delete(*(journal_key(a, r) for a, r in links))


def unwritten(app_id, repository_id):
    """{path: sha or None} an earlier job noted but did not write (it died between batches):
    to write() before diffing, and forget() once that has committed."""
    noted = runtime.redis_client().hgetall(journal_key(app_id, repository_id))
    return {path.decode(): sha.decode() or None for path, sha in noted.items()}


class Batch:
    """The acknowledgements of one attempt not yet written to PostgreSQL, from any number of
    threads. `patiently(action)` runs each Redis or PostgreSQL step (the job's way of waiting
    out an outage). Call confirm() before each request to the app, and close() at the end."""

    def __init__(self, app_id, repository_id, patiently):
        self.app_id, self.repository_id = app_id, repository_id
        self.patiently = patiently
        self.lock = threading.Lock()
        self.pending = {}
        self.notes = _Notes(journal_key(app_id, repository_id))

    def acknowledged(self, path, sha):
        """Note one acknowledgement at once; write a batch when BATCH_FILES are waiting."""
        with self.lock:
            self.patiently(lambda: self.notes.note(path, sha or _DELETED))
            self.pending[path] = sha
            full = len(self.pending) >= BATCH_FILES
            if full:
                pending, self.pending = self.pending, {}
        if full:
            self._write(pending)

    def confirm(self):
        """Every acknowledgement noted so far is in the journal (call before the next request:
        a file goes out only once the ones before it are safe)."""
        with self.lock:
            self.patiently(self.notes.confirm)

    def flush(self):
        """Write what is waiting in one transaction, then take it out of the journal."""
        with self.lock:
            pending, self.pending = self.pending, {}
        if pending:
            self._write(pending)

    def rest(self):
        """What is waiting, as ([(path, sha)] sent, [path] deleted), for the caller to write
        (snapshot_links.mark_synced); forget_written() once that has committed."""
        with self.lock:
            return ([(path, sha) for path, sha in self.pending.items() if sha],
                    [path for path, sha in self.pending.items() if not sha])

    def forget_written(self, pipeline):
        """Take what rest() gave out of the journal once it is written, on `pipeline` (run by
        the caller, best effort: left in the journal, it is only written again by the link's
        next job)."""
        with self.lock:
            pending, self.pending = self.pending, {}
        forget(self.app_id, self.repository_id, list(pending), pipeline)

    def close(self):
        self.notes.close()

    def _write(self, pending):
        def write_batch():
            with db.connection() as conn:
                write(conn, self.app_id, self.repository_id, pending)

        self.confirm()  # the journal holds them before PostgreSQL does, and before forget()
        self.patiently(write_batch)
        self.patiently(lambda: forget(self.app_id, self.repository_id, list(pending)))


class _Notes:
    """A job's notes into its journal, pipelined on a Redis connection of its own: a note is
    sent the moment the app acknowledges a file, its reply read by confirm() before the next
    request goes out; by then the reply has almost always arrived. A round trip per file (a
    worker asleep on Redis, and redis-py's per-command work) was a fifth of a job's time, and
    still no file goes out while an earlier acknowledgement could be missing from the journal:
    a worker killed at any point leaves unnoted at most the file it had just been answered for.

    After a connection error every note not yet confirmed is sent again (HSET is idempotent);
    the error goes to the caller, whose patiently() tries again."""

    def __init__(self, key):
        self.key = key
        self._hset = b"*4\r\n$4\r\nHSET\r\n" + _bulk(key.encode())
        self.connection = None
        self.to_send = {}  # path → value, not yet sent on the current connection
        self.sent = []  # [(path, value)] sent, reply not read yet
        self.replies = 0  # replies to read for `sent` (the EXPIRE has one too)

    def note(self, path, value):
        self.to_send[path] = value
        self._send()

    def confirm(self):
        if self.to_send:
            self._send()
        try:
            while self.replies:
                self.connection.read_response()
                self.replies -= 1
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop()
            raise
        self.sent.clear()

    def close(self):
        if self.connection is not None:
            if self.replies:  # a job cut short: its replies must not reach the next user
                self.connection.disconnect()
            runtime.redis_client().connection_pool.release(self.connection)
            self.connection = None

    def _send(self):
        extra = b""
        try:
            if self.connection is None:
                self.connection = runtime.redis_client().connection_pool.get_connection()
                # A new connection: what the last one sent may not have been applied, and the
                # journal's time to live is set (once per connection, not per note).
                self.to_send = {**dict(self.sent), **self.to_send}
                self.sent, self.replies = [], 0
                extra = _packed(b"EXPIRE", self.key.encode(), str(JOURNAL_TTL_S).encode())
            # Packed here (RESP, as redis-py packs it): a note per file went through redis-py's
            # general packing of every argument, a tenth of the job's Python time.
            packed = b"".join(self._hset + _bulk(path.encode()) + _bulk(value.encode())
                              for path, value in self.to_send.items()) + extra
            self.connection.send_packed_command([packed])
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop()
            raise
        self.replies += len(self.to_send) + (1 if extra else 0)
        self.sent.extend(self.to_send.items())
        self.to_send.clear()

    def _drop(self):
        if self.connection is not None:
            self.connection.disconnect()
            self.close()
            self.replies = 0


def _bulk(data):
    """One argument of a command, as RESP writes it."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _packed(*args):
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)
