"""One (app, repository) link as the link page and its JSON twin show it: where it is in words,
its last error, what the app has received, and its attempt log."""
from ... import db, redact, runtime
from ...errors import ApiError
from ...input_values import valid_id
from ...repositories import apps as apps_repo
from ...repositories import delivery_attempts
from ..control import delivery_control, repository_circuit
from ..delivery import exchange
from . import link_state

ATTEMPTS_SHOWN = 50


def load(app_id, repository_id):
    """The link row with its state; ApiError 404 when there is no such link."""
    if not (valid_id(app_id) and valid_id(repository_id)):
        raise ApiError(404, "App-repository link not found")
    with db.connection() as conn:
        link = apps_repo.get_link(conn, app_id, repository_id)
    if link is None:
        raise ApiError(404, "App-repository link not found")
    return _with_state(link)


def _with_state(link):
    link = dict(link)
    link["github_url"] = redact.scrub(link["github_url"])
    link["max_attempts"] = runtime.settings().max_retry_attempts
    link["delivery"] = delivery_control.states_of([link["app_id"]])[link["app_id"]]
    link["repository_circuit"] = repository_circuit.state(link["repository_id"])
    link.update(link_state.describe(link, link["max_attempts"], delivery=link["delivery"],
                                    circuit=link["repository_circuit"]))
    return link


def detail(app_id, repository_id):
    """The link and its newest attempts: (link, attempts, attempts in all). Each attempt has its
    last request and the app's answer (`request`, `response`: services/delivery/exchange.shown)
    or, when they are not there, `exchange_missing` says why."""
    link = load(app_id, repository_id)
    with db.connection() as conn:
        rows = delivery_attempts.for_link(conn, link["id"], ATTEMPTS_SHOWN)
        total = delivery_attempts.count_for_link(conn, link["id"])
    attempts = []
    for row in rows:
        request, response, missing = exchange.shown(row)
        attempts.append({**row, "request": request, "response": response,
                         "exchange_missing": missing})
    return link, attempts, total


def link_json(link, attempts=None):
    """The public shape of a link (GET /admin/api/links/<app_id>/<repository_id>)."""
    iso = (lambda moment: moment.isoformat() if moment else None)
    body = {
        "app_id": link["app_id"], "app_name": link["app_name"],
        "repository_id": link["repository_id"],
        "repository": f"{link['owner']}/{link['name']}", "github_url": link["github_url"],
        "status": link["status"], "state": link["state"], "state_text": link["text"],
        "action": link["action"], "retry_count": link["retry_count"],
        "max_attempts": link["max_attempts"], "last_error": link["last_error"],
        "next_attempt_at": iso(link["next_attempt_at"]) if link["status"] == "pending_snapshot"
        else None,
        "updated_at": iso(link["updated_at"]), "last_scanned_at": iso(link["last_scanned_at"]),
        "files_delivered": link["files_delivered"],
        "episode": {"cause": link["retry_cause"], "operation_id": link["retry_operation_id"]},
        "repository_circuit": repository_circuit.circuit_json(link["repository_circuit"]),
        # The cause its error is grouped under (failed links), and its dismissal, if any.
        "cause": link["error_cause"] if link["status"] == "failed" else None,
        "dismissed": {"at": iso(link["dismissed_at"]), "by": link["dismissed_by"],
                      "reason": link["dismiss_reason"]} if link["dismissed_at"] else None,
    }
    if attempts is not None:
        body["attempts"] = [{
            "attempt": a["attempt"], "cause": a["cause"], "operation_id": a["operation_id"],
            "started_at": iso(a["started_at"]), "finished_at": iso(a["finished_at"]),
            "duration_ms": a["duration_ms"], "outcome": a["outcome"],
            "link_status": a["link_status"], "error": a["error"],
            "http_status": a["http_status"], "files_sent": a["files_sent"],
            "bytes_sent": a["bytes_sent"], "skipped_count": a["skipped_count"],
            "skipped": a["skipped"] or [], "request": a.get("request"),
            "response": a.get("response"), "exchange_missing": a.get("exchange_missing")}
            for a in attempts]
    return body


def last_skipped(attempts):
    """The newest of `attempts` (newest first) that set files aside as not sendable, or
    None."""
    return next((a for a in attempts if a["skipped_count"]), None)
