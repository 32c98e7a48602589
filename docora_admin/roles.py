"""Roles and the one rule that enforces them for every route.

viewer < operator < admin. The rule, applied by `enforce` (a before_request hook) to every
endpoint under /admin that needs a login:
- an endpoint marked with @requires_role(...) needs that role;
- otherwise GET, HEAD and OPTIONS need `viewer` (looking) and every other method `operator`
  (acting): a route added later is operator-only for its POSTs without anyone remembering to
  say so.
Logging in and out and reading one's own session are marked @requires_role("viewer").
Refusals: 403 `{"error": …}` under /admin/api/, a 403 page elsewhere, an error fragment for htmx
(errors.error_response decides).
"""
from flask import current_app, request
from flask_login import current_user

from .errors import error_response
from .services.team import audit

ROLES = ("viewer", "operator", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_ATTRIBUTE = "_docora_required_role"
_REFUSED = "_docora_refused_what"


def requires_role(role, refused="manage accounts"):
    """Mark a view as needing `role`, whatever its method (put it under the route decorator).
    `refused`: what an admin-only view does, for the refusal ("Your role (operator) cannot
    <refused>")."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}")

    def mark(view):
        setattr(view, _ATTRIBUTE, role)
        setattr(view, _REFUSED, refused)
        return view
    return mark


def required_role(endpoint, method):
    """The role an endpoint needs for `method`: its mark, else the method's default."""
    view = current_app.view_functions.get(endpoint)
    marked = getattr(view, _ATTRIBUTE, None)
    if marked is not None:
        return marked
    return "viewer" if method in SAFE_METHODS else "operator"


def allows(role, needed):
    return role in _RANK and _RANK[role] >= _RANK[needed]


def enforce():
    """before_request, after the login rule: refuse a logged-in account whose role is short."""
    if request.endpoint in (None, "static") or not current_user.is_authenticated:
        # Static files need no account (and no database query); 404s stay 404s; anonymous
        # requests were answered by the login rule.
        return None
    needed = required_role(request.endpoint, request.method)
    if allows(current_user.role, needed):
        return None
    view = current_app.view_functions.get(request.endpoint)
    what = getattr(view, _REFUSED, "manage accounts") if needed == "admin" else "change anything"
    # A logged-in account trying what its role may not is worth knowing about (the console
    # shows no such button, so this is a script or a crafted request); a flood of them is not
    # worth a row each (issue 24: 200 rows in 3.6 s, kept 400 days).
    times = _refusals_in_window(current_user.account_id, request.method, request.path)
    if times is None or times in DENIED_RECORDED_AT:
        audit.record_alone("access.denied", target=request.path[:255],
                           details={"method": request.method, "needs": needed,
                                    "role": current_user.role, "times": times,
                                    "window_s": DENIED_WINDOW_S})
    return error_response(403, f"Your role ({current_user.role}) cannot {what}: that needs "
                               f"the {needed} role")


def template_flags():
    """Context processor: what the current account may do, so templates show only usable
    actions."""
    role = getattr(current_user, "role", None) if current_user.is_authenticated else None
    return {"current_role": role, "can_operate": allows(role, "operator"),
            "is_admin": allows(role, "admin")}


def init_app(app):
    app.before_request(enforce)
    app.context_processor(template_flags)


# access.denied is recorded for the first refusal of an account, method and path in a window,
# and again when the count in that window reaches 10, 100, 1,000… (details.times).
DENIED_WINDOW_S = 600
DENIED_RECORDED_AT = frozenset(10 ** k for k in range(7))
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _refusals_in_window(account_id, method, path):
    """How many times (this one included) the account was refused this method and path in the
    current window; None when Redis cannot say (then every refusal is recorded)."""
    import hashlib

    import redis

    from . import runtime

    digest = hashlib.sha256(f"{method} {path}".encode("utf-8", "replace")).hexdigest()[:24]
    try:
        return int(runtime.redis_client().register_script(_COUNT)(
            keys=[f"docora:access-denied:{account_id}:{digest}"], args=[DENIED_WINDOW_S]))
    except redis.RedisError:
        return None
