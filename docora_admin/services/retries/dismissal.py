"""Dismissing failed links that will never succeed ("repository not found"), and taking a
dismissal back.

A dismissed link keeps Docora's `failed` status (the original dashboard and scripts know no
other: DOCORA_CONTRACT.md) and is marked by its own columns (who, when, why; migration 023). It
leaves the failed list, its counts and the grouped view, is never a target of a bulk retry
("Retry all", "Retry app", a selection), and is listed in its own view. A single retry of it
still works and ends the dismissal, as does anything else that moves it out of `failed`.

POST /admin/api/links/dismiss and /links/undismiss take {app_id, repository_id, reason} (one
link) or {cause, reason} (every link of that cause; app_id with a cause narrows it to one app).
Every change is audited (link.dismiss, link.undismiss) in its own transaction.
"""
from ... import db, error_causes
from ...errors import ApiError
from ...input_values import valid_id
from ...repositories import failure_causes as causes_repo
from ..team import audit

MAX_REASON_LENGTH = 500
FIELDS = ("app_id", "repository_id", "cause", "reason")


def parse(body, reason_required):
    """{app_id, repository_id, cause, reason} from a request body. ApiError 400 (one line naming
    the field) for anything else: nothing is changed."""
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ApiError(400, f"Unknown field {unknown[0]!r}: send {', '.join(FIELDS)}")
    app_id, repository_id, cause = (body.get(name) for name in ("app_id", "repository_id",
                                                                 "cause"))
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, "reason must be text")
    reason = (reason or "").strip()
    if reason_required and not reason:
        raise ApiError(400, "reason is required: say why these links will not be retried")
    if len(reason) > MAX_REASON_LENGTH or "\x00" in reason:
        raise ApiError(400, f"reason must be at most {MAX_REASON_LENGTH} characters of text")
    if cause not in (None, ""):
        if repository_id not in (None, ""):
            raise ApiError(400, "Send either {app_id, repository_id} or {cause}, not both")
        if not isinstance(cause, str) or not cause.strip() \
                or len(cause) > error_causes.MAX_ERROR_READ or "\x00" in cause:
            raise ApiError(400, "cause must be a cause (or an error text) of at most "
                                f"{error_causes.MAX_ERROR_READ} characters")
        if app_id not in (None, "") and not valid_id(app_id):
            raise ApiError(400, "app_id is not a valid app id")
        return {"app_id": app_id or None, "repository_id": None,
                "cause": error_causes.normalise(cause), "reason": reason}
    if not (valid_id(app_id) and valid_id(repository_id)):
        raise ApiError(400, "Send {app_id, repository_id} of one link, or {cause}, "
                            "with a reason")
    return {"app_id": app_id, "repository_id": repository_id, "cause": None, "reason": reason}


def dismiss(chosen, actor):
    """Dismiss the chosen link or cause (parse's result). Returns {dismissed: n, cause}.
    ApiError 404 for an unknown link or a cause with no failed link, 409 for a link that is not
    failed or already dismissed."""
    with db.connection() as conn:
        if chosen["cause"] is None:
            row = causes_repo.dismiss_link(conn, chosen["app_id"], chosen["repository_id"],
                                           actor, chosen["reason"])
            if row is None:
                _refuse_link(conn, chosen, dismissing=True)
            count, cause = 1, row["error_cause"]
        else:
            cause = chosen["cause"]
            count = causes_repo.dismiss_cause(conn, cause, actor, chosen["reason"],
                                              chosen["app_id"])
            if count == 0:
                raise ApiError(404, "No failed notifications with this cause"
                               + (" for this app" if chosen["app_id"] else ""))
        audit.record(conn, "link.dismiss", target=_target(chosen), actor=actor,
                     details={**_details(chosen), "cause": cause, "links": count})
    return {"dismissed": count, "cause": cause}


def undismiss(chosen, actor):
    """Take back the dismissal of the chosen link or cause. Returns {undismissed: n, cause}.
    ApiError 404 for an unknown link or nothing dismissed with the cause, 409 for a link that
    is not dismissed."""
    with db.connection() as conn:
        if chosen["cause"] is None:
            row = causes_repo.undismiss_link(conn, chosen["app_id"], chosen["repository_id"])
            if row is None:
                _refuse_link(conn, chosen, dismissing=False)
            count, cause = 1, row["error_cause"]
            was = {"dismissed_by": row["dismissed_by"], "dismiss_reason": row["dismiss_reason"],
                   "dismissed_at": row["dismissed_at"].isoformat()}
        else:
            cause, was = chosen["cause"], {}
            count = causes_repo.undismiss_cause(conn, cause, chosen["app_id"])
            if count == 0:
                raise ApiError(404, "No dismissed notifications with this cause"
                               + (" for this app" if chosen["app_id"] else ""))
        audit.record(conn, "link.undismiss", target=_target(chosen), actor=actor,
                     details={**_details(chosen), "cause": cause, "links": count, **was})
    return {"undismissed": count, "cause": cause}


def _refuse_link(conn, chosen, dismissing):
    state = causes_repo.link_state(conn, chosen["app_id"], chosen["repository_id"])
    if state is None:
        raise ApiError(404, "App-repository link not found")
    if dismissing:
        if state["status"] != "failed":
            raise ApiError(409, "Only failed links can be dismissed")
        raise ApiError(409, "This link is already dismissed")
    raise ApiError(409, "This link is not dismissed")


def _target(chosen):
    if chosen["cause"] is None:
        return f"{chosen['app_id']}/{chosen['repository_id']}"
    return f"cause:{chosen['cause']}"[:255]


def _details(chosen):
    return {key: chosen[key] for key in ("app_id", "repository_id", "reason") if chosen[key]}
