"""The per-repository git circuit (DOCORA_CONTRACT.md §1, "sync_failed").

Git failures (clone, fetch, authentication, repository gone: git_fetch.GitError; never the
app's answers, never RepositoryBusy) are counted per repository across all its links. At
REPOSITORY_FAILURE_THRESHOLD in a row the circuit opens for REPOSITORY_COOLDOWN_MINUTES, and in
the same transaction as the failed attempt one sync_failed notice per linked app is written to
the outbox (sent by services/control/sync_failed.py). This is separate from an app's circuit
(services/control/delivery_control.py), which counts the app's bad answers only.

While the circuit is open a snapshot job for one of the repository's links does no git work:
gate() gives the link back as held (pending_snapshot, retry_count unchanged, nothing logged or
counted), due when the cooldown ends. The first job after the cooldown is the half-open probe
(the others wait for its outcome): a success closes the circuit and queues the waiting links; a
git failure opens it for another cooldown, a new episode, and every linked app is sent
sync_failed again (the repository is still unreachable: each opening is told once).

The first successful git look (a link delivered, or the app answering after the fetch) resets
the count and closes the circuit. An operator may close it by hand (close()).
"""
import logging
from dataclasses import dataclass
from datetime import datetime

from ... import db, runtime
from ...errors import ApiError
from ...repositories import repository_circuit as circuit_repo
from ..team import audit
from ..alerts import changes as alert_changes
from ..jobs import job_queue
from ..retries import outcomes

log = logging.getLogger(__name__)

RELEASE_BATCH = 5000
SHOWN_ON_OVERVIEW = 50


@dataclass(frozen=True)
class Gate:
    """What a job that claimed a link may do about its repository's circuit: go on (`probe`:
    as the half-open circuit's probe), or not (`held`: the link was given back)."""
    held: bool = False
    probe: bool = False


GO = Gate()


def gate(conn_factory, claimed, context):
    """Before any git work, for a claimed link whose repository's circuit has opened
    (context["repository_circuit_tripped"], read by the claim): hold the link while the circuit
    is open, or take the half-open circuit's probe. Returns (Gate, what to schedule or None)."""
    if not context.get("repository_circuit_tripped"):
        return GO, None
    lease = runtime.settings().job_lease_seconds
    with conn_factory() as conn:
        if not context.get("repository_circuit_open"):
            taken = circuit_repo.take_probe(conn, context["repository_id"], lease)
            if taken["probe"]:
                return Gate(probe=True), None
            if not taken["tripped"]:  # closed meanwhile
                return GO, None
        return Gate(held=True), job_queue.noted(conn, circuit_repo.hold_link(conn, claimed))


def record_git_failure(conn, repository_id, error, was_probe=False):
    """In the transaction that marks an attempt failed because of git: one more failure in the
    repository's streak; the circuit opens at the threshold (or when the probe failed), with its
    sync_failed notices and an audit event. Returns the repository's state after (None: the
    repository is gone); `opened` says the caller must queue the sender after the commit
    (services/control/sync_failed.queue_after_commit)."""
    settings = runtime.settings()
    row = circuit_repo.record_git_failure(
        conn, repository_id, error, settings.repository_failure_threshold,
        settings.repository_cooldown_minutes, was_probe)
    if row is not None and row["opened"]:
        alert_changes.repository_circuit_opened(conn, repository_id, row, error)
        audit.record(conn, "repository.circuit_open", target=repository_id, actor="system",
                     details={
                         "consecutive_failures": row["consecutive_failures"],
                         "threshold": settings.repository_failure_threshold,
                         "cooldown_until": row["circuit_open_until"].isoformat(),
                         "episode": row["circuit_episode"], "apps_notified": row["notices"],
                         "error": error, "probe_failed": was_probe})
        log.warning("git circuit opened for %s after %d git failures in a row (until %s): %s",
                    repository_id, row["consecutive_failures"],
                    row["circuit_open_until"].isoformat(), error)
    return row


def record_success(repository_id):
    """A git look at the repository went through: end its streak and close its circuit. When
    the circuit was open (the probe succeeded, or a job under way), queue the links that waited.
    Returns how many were queued."""
    with db.connection() as conn:
        before = circuit_repo.reset(conn, repository_id)
        if before is not None and before["circuit_opened_at"] is not None:
            audit.record(conn, "repository.circuit_close", target=repository_id,
                         actor="system", details={
                             "reason": "a git fetch went through",
                             "consecutive_failures": before["consecutive_failures"]})
            alert_changes.repository_circuit_closed(conn, repository_id, before,
                                                    "a git fetch went through")
    if before is None or before["circuit_opened_at"] is None:
        return 0
    log.warning("git circuit closed for %s: a fetch went through", repository_id)
    return release(repository_id)


def release(repository_id):
    """Queue the repository's links that wait for a later time (in batches, each queued after
    its commit; a crash between the two is healed by the sweeper). Returns how many."""
    total = job_queue.queue_in_batches(
        lambda conn: circuit_repo.release_links(conn, repository_id, RELEASE_BATCH),
        RELEASE_BATCH)
    outcomes.refresh_held()
    return total


def close(repository_id):
    """An operator closes the repository's circuit: the count goes back to 0 and its waiting
    links are queued. Audited (by the logged-in user). Returns (state, links queued)."""
    _valid(repository_id)
    runtime.redis_client().ping()  # fail before changing anything when the queue is down
    with db.connection() as conn:
        if not circuit_repo.for_repositories(conn, [repository_id]):
            raise ApiError(404, "Repository not found")
        before = circuit_repo.reset(conn, repository_id)
        if before is not None and before["circuit_opened_at"] is not None:
            alert_changes.repository_circuit_closed(
                conn, repository_id, before,
                f"closed by {audit.current_actor() or 'an operator'}")
        audit.record(conn, "repository.circuit_close", target=repository_id, details={
            "consecutive_failures": before["consecutive_failures"] if before else 0,
            "was_open": bool(before and before["circuit_opened_at"] is not None)})
    released = release(repository_id)
    log.info("git circuit of %s closed by an operator: %d link(s) queued", repository_id,
             released)
    return state(repository_id), released


# --- what the console and the JSON show ----------------------------------------------------

def describe(row):
    """A repository's circuit as the console and the JSON say it (row None: never failed).
    circuit: closed | open | half_open (the cooldown is over; the next job is the probe)."""
    settings = runtime.settings()
    row = row or {}
    opened_at = row.get("circuit_opened_at")
    is_open = bool(row.get("circuit_open"))
    circuit = "open" if is_open else ("half_open" if opened_at is not None else "closed")
    failures = row.get("consecutive_failures", 0)
    return {
        "repository_id": row.get("repository_id"),
        "circuit": circuit, "circuit_open": is_open, "tripped": opened_at is not None,
        "circuit_opened_at": opened_at,
        "open_until": row.get("circuit_open_until") if opened_at is not None else None,
        "consecutive_failures": failures,
        "threshold": settings.repository_failure_threshold,
        "cooldown_minutes": settings.repository_cooldown_minutes,
        "last_git_error": row.get("last_git_error") if failures or opened_at else None,
        "last_git_failure_at": row.get("last_git_failure_at") if failures or opened_at else None,
        "notices": row.get("notices", 0), "notices_sent": row.get("notices_sent", 0),
        "notices_failed": row.get("notices_failed", 0),
    }


def _valid(repository_id):
    if not isinstance(repository_id, str) or not 0 < len(repository_id) <= 50:
        raise ApiError(404, "Repository not found")


def existing_state(repository_id):
    """state() of a repository that exists; ApiError 404 otherwise."""
    _valid(repository_id)
    with db.connection() as conn:
        rows = circuit_repo.for_repositories(conn, [repository_id])
    if repository_id not in rows:
        raise ApiError(404, "Repository not found")
    return {**describe(rows[repository_id]), "repository_id": repository_id}


def circuit_json(described):
    """A described circuit with its times as ISO 8601 (for JSON answers)."""
    return {key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in described.items()}


def state(repository_id, conn=None):
    """The circuit of one repository (describe), e.g. for an app's JSON (`circuit_open`)."""
    return states_of([repository_id], conn)[repository_id]


def states_of(repository_ids, conn=None):
    """{repository_id: describe(...)} for many repositories, in one query."""
    ids = list(repository_ids)
    if conn is None:
        with db.connection() as own:
            rows = circuit_repo.for_repositories(own, ids)
    else:
        rows = circuit_repo.for_repositories(conn, ids)
    return {rid: {**describe(rows.get(rid)), "repository_id": rid} for rid in ids}


def tripped():
    """For the overview: {open: count open now, repositories: [the open or half-open ones,
    described, with owner, name and links]}."""
    with db.connection() as conn:
        count = circuit_repo.count_open(conn)
        rows = circuit_repo.tripped_repositories(conn, SHOWN_ON_OVERVIEW)
    return {"open": count,
            "repositories": [{**describe(r), "owner": r["owner"], "name": r["name"],
                              "links": r["links"]} for r in rows]}
