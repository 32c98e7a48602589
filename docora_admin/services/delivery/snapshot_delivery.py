"""Delivering one claimed link: fetch and scan its repository (shared with every link of it,
services/delivery/shared_checkout.py), diff against what the app acknowledged, and send deletes,
then creates, then updates, each a signed POST (services/delivery/webhook_client.py), noting
every acknowledgement at once (services/delivery/acknowledgements.py). How the attempt ends is
recorded by services/delivery/snapshot.py.
"""
import threading
from dataclasses import dataclass

from ... import crypto, db, redact, runtime
from ...repositories import delivered_files, snapshot_links
from . import acknowledgements, shared_checkout
from .payloads import cached_entry, delete_body, delivery_id, encode_body, file_bodies
from .webhook_client import DeliveryError, WebhookClient
from .patience import in_transaction, patiently

STREAM_MIN_FILES = 100  # a link with fewer files to send sends them one at a time


class SnapshotError(Exception):
    """A failure to record on the link as last_error."""


@dataclass
class Sent:
    """What one attempt delivered before it ended."""
    files: int = 0
    deletes: int = 0
    creates: int = 0
    updates: int = 0
    bytes: int = 0
    skipped: tuple = ()  # file_scan.SkippedFile: files of the commit that cannot be sent
    exchange: object = None  # exchange.Exchange: the last request the app answered


class ClaimLost(Exception):
    """The job's link was given to another job while this one waited out an outage."""


def deliver(claimed, context, sent, where, limiter=None, give_back=None):
    """Fetch, scan, diff and deliver, counting into `sent` as files are acknowledged.
    `give_back`: shared_checkout.read's (when another job of this machine fetches the
    repository, may this one give its worker back).

    What the app acknowledged is noted at once and written to PostgreSQL in batches
    (services/delivery/acknowledgements.py), waiting out an outage of Redis or PostgreSQL (a file
    the app has, recorded late, is not sent again by the next job); after such a wait the job goes
    on only if its claim still holds."""
    settings = runtime.settings()
    if not context["client_auth_key_encrypted"]:
        raise SnapshotError("app has no client auth key")
    key = _decrypted(settings.encryption_key, context["client_auth_key_encrypted"])
    token = (_decrypted(settings.encryption_key, context["github_token_encrypted"])
             if context["github_token_encrypted"] else None)
    app_id, repository_id = context["app_id"], context["repository_id"]

    def holding_on(action):
        # Wait out an outage, then go on only if this job still holds the link.
        waited = []
        result = patiently(action, where, waited)
        if waited and not patiently(lambda: in_transaction(
                lambda conn: snapshot_links.holds_claim(conn, claimed)), where):
            raise ClaimLost()
        return result

    already = _delivered_so_far(app_id, repository_id, where)
    # The checkout is shared by every app of the repository (services/delivery/shared_checkout.py):
    # what must be sent is read under its lock, delivered after; a file this process has encoded
    # for another app is not read again (its entry is kept for this job in `encoded`, by path
    # and sha: `wanted` may be asked again for a newer commit).
    encoded = {}

    def wanted(files):
        to_read = []
        for f in files:
            if already.get(f.path) != f.sha:
                entry = cached_entry(f.path, f.sha)
                if entry is None:
                    to_read.append(f)
                else:
                    encoded[(f.path, f.sha)] = entry
        return to_read

    commit, contents = shared_checkout.read(
        repository_id, context["github_url"], token, claimed["due_at"].timestamp(), wanted,
        give_back)
    files = commit.files
    sent.skipped = commit.skipped
    # A file set aside (unreadable now) is not deleted from the app for that.
    current = {f.path for f in files} | {f.path for f in commit.skipped}
    creates = [f for f in files if f.path not in already]
    updates = [f for f in files if f.path in already and already[f.path] != f.sha]
    deletes = sorted(path for path in already if path not in current)

    client = WebhookClient(context["base_url"], app_id, key, settings.delivery_timeout_s,
                           limiter, keep_handles=True)
    # The body's repository object, encoded once for all of the link's requests.
    repository = encode_body({"repository_id": repository_id, "github_url": redact.scrub(
        context["github_url"]), "owner": context["owner"], "name": context["name"]})
    batch = acknowledgements.Batch(app_id, repository_id, holding_on)
    counting = threading.Lock()

    def delete(path):
        holding_on(batch.confirm)
        client.post("delete", delete_body(repository, commit.sha, path, already[path]),
                    delivery_id(app_id, repository_id, "delete", path, already[path],
                                commit.sha))
        batch.acknowledged(path, None)
        with counting:
            sent.files, sent.deletes = sent.files + 1, sent.deletes + 1

    def send(action, scanned):
        # A file's requests (its chunks) go in order on one stream, each acknowledged before
        # the next.
        once = delivery_id(app_id, repository_id, action, scanned.path, scanned.sha,
                           commit.sha)
        for body in file_bodies(repository, commit.sha, scanned.path, scanned.sha,
                                contents.pop(scanned.path, None),
                                already.get(scanned.path) if action == "update" else None,
                                encoded.pop((scanned.path, scanned.sha), None)):
            holding_on(batch.confirm)  # no request while an acknowledgement is unnoted
            client.post(action, body, once)
        # Noted as each file is acknowledged, so a later run resends only what is missing.
        batch.acknowledged(scanned.path, scanned.sha)
        with counting:
            sent.files += 1
            if action == "create":
                sent.creates += 1
            else:
                sent.updates += 1

    # Streams pay for their threads when a link has much to send (a first sync of a large
    # repository); for a few files they only add threads contending for the GIL with the other
    # workers' jobs (measured: +50% CPU per file on a retry-all of 20-file links).
    todo = len(deletes) + len(creates) + len(updates)
    streams = settings.delivery_streams_per_link if todo >= STREAM_MIN_FILES else 1
    if limiter is not None and limiter.concurrency > 0:
        # Each stream holds one of the app's concurrency slots: a stream beyond them would
        # only wait for one, and give the link back after MAX_WAIT_S.
        streams = min(streams, limiter.concurrency)
    ended = limiter.thread_done if limiter is not None else None
    try:
        # Deletes, then creates, then updates: each phase ends before the next begins.
        _on_streams(streams, [lambda p=p: delete(p) for p in deletes], ended)
        _on_streams(streams, [lambda f=f: send("create", f) for f in creates], ended)
        _on_streams(streams, [lambda f=f: send("update", f) for f in updates], ended)
        holding_on(batch.confirm)
    except DeliveryError:
        # The app refused one file: what it took before is written now, so the link's page
        # counts it (the journal would have it written by the next job anyway).
        try:
            batch.flush()
        finally:
            batch.close()
        raise
    except BaseException:
        batch.close()
        raise
    finally:
        sent.bytes = client.bytes_sent
        sent.exchange = client.last
        client.close()
    return Delivered(batch, repository_id, commit.sha, files)


class Delivered:
    """An attempt that delivered everything: its last acknowledgements (rest()) are written by
    the statement that marks the link synced, and the repository's snapshot, when this process
    has not seen it saved (snapshot_saved), in the same transaction by record_snapshot(conn);
    settled() once that has committed, close() in any case."""

    def __init__(self, batch, repository_id, commit_sha, files):
        self.batch, self.repository_id = batch, repository_id
        self.commit_sha, self.files = commit_sha, files

    @property
    def snapshot_saved(self):
        return _snapshots_saved.get(self.repository_id) == self.commit_sha

    def record_snapshot(self, conn):
        delivered_files.save_snapshot(conn, self.repository_id, self.commit_sha,
                                      [(f.path, f.sha, f.size) for f in self.files])

    def rest(self):
        return self.batch.rest()

    def settled(self, pipeline):
        """The outcome has committed: what is left to do in Redis goes on `pipeline`."""
        if len(_snapshots_saved) >= SNAPSHOTS_REMEMBERED:
            _snapshots_saved.clear()
        _snapshots_saved[self.repository_id] = self.commit_sha
        self.batch.forget_written(pipeline)

    def close(self):
        self.batch.close()


# repository_id → the commit whose snapshot this process has seen saved: the other apps' jobs
# of that commit skip the statement.
_snapshots_saved = {}
SNAPSHOTS_REMEMBERED = 100_000


def _on_streams(streams, tasks, thread_done=None):
    """Run `tasks` (one file each) in order of start on up to `streams` threads, this one
    included: a link with many files is not held to one request at a time. The first error
    stops the tasks not yet started and is raised once the running ones have ended.
    `thread_done()` is called by each helper thread as it ends."""
    if streams <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    queue, taking, errors = iter(tasks), threading.Lock(), []

    def stream():
        while not errors:
            with taking:
                task = next(queue, None)
            if task is None:
                return
            try:
                task()
            except BaseException as exc:  # raised below, in the job's own thread
                errors.append(exc)
                return

    def helper():
        try:
            stream()
        finally:
            if thread_done is not None:
                thread_done()

    helpers = [threading.Thread(target=helper, name="delivery-stream", daemon=True)
               for _ in range(min(streams, len(tasks)) - 1)]
    for helper in helpers:
        helper.start()
    stream()
    for helper in helpers:
        helper.join()
    if errors:
        raise errors[0]


def _decrypted(encryption_key, encrypted):
    """crypto.decrypt, once per process for each (key, ciphertext): an app's jobs all decrypt
    the same client key (AES-GCM and its key setup, per link)."""
    found = _keys_decrypted.get((encryption_key, encrypted))
    if found is None:
        found = crypto.decrypt(encryption_key, encrypted)
        if len(_keys_decrypted) >= KEYS_REMEMBERED:
            _keys_decrypted.clear()
        _keys_decrypted[(encryption_key, encrypted)] = found
    return found


_keys_decrypted = {}
KEYS_REMEMBERED = 10_000


def _delivered_so_far(app_id, repository_id, where):
    """{path: sha} the app has acknowledged, an earlier job's unwritten journal included."""
    def read():
        noted = acknowledgements.unwritten(app_id, repository_id)
        if not noted:  # the usual case: one statement, no transaction round trips
            with db.autocommit_connection() as conn:
                return noted, delivered_files.delivered(conn, app_id, repository_id)
        with db.connection() as conn:
            acknowledgements.write(conn, app_id, repository_id, noted)
            return noted, delivered_files.delivered(conn, app_id, repository_id)

    settled, already = patiently(read, where)
    if settled:
        patiently(lambda: acknowledgements.forget(app_id, repository_id, list(settled)), where)
    return already
