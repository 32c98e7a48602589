"""Refusing state-changing requests that a browser says come from another site.

A CSRF token proves the page was ours; this also covers the case it cannot: a token that leaked
(or a form without one, like the login form). Browsers send `Sec-Fetch-Site` (all current ones)
or at least `Origin` on a POST. Scripts, curl and test clients send neither and go on to the CSRF
check as before.

The other way round, is_same_origin_json() names the one kind of request that needs no CSRF
token: same-origin JSON under /admin/api/, as the original Docora dashboard sends it.
"""
from urllib.parse import urlsplit

from flask import request

from .errors import error_response

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Methods a cross-site page can only send after a CORS preflight, whatever the body.
PREFLIGHTED_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
# "none": the user typed or bookmarked it (no page initiated the request).
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

CROSS_SITE_MESSAGE = ("Cross-site request refused: changes are accepted only from this "
                      "console's own pages")


def _origin_tuple(scheme, netloc):
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        return None
    return (scheme.lower(), (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme))


def is_cross_site():
    """True when this request's Sec-Fetch-Site, or else its Origin, names another site."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ALLOWED_FETCH_SITES
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return not _own_origin(origin)


def _own_origin(origin):
    """True when the Origin header names this request's own scheme, host and port."""
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:  # "null" (sandboxed frames, file://) or garbage
        return False
    return (_origin_tuple(parts.scheme, parts.netloc)
            == _origin_tuple(request.scheme, request.host))


def is_same_origin_json():
    """True for a request the original Docora dashboard sends: under /admin/api/, a JSON body
    (`Content-Type: application/json`), not htmx, and marked by the browser as coming from this
    origin (`Sec-Fetch-Site: same-origin`, or without that header an `Origin` equal to ours).
    Such a request needs no CSRF token (auth.protect_csrf): no other site can make a browser
    send it, since a JSON content type needs a CORS preflight and we never grant CORS.
    A DELETE (the original's app deletion) counts with any body: the method alone needs the
    preflight."""
    if not request.path.startswith("/admin/api/"):
        return False
    if request.mimetype != "application/json" and request.method not in PREFLIGHTED_METHODS:
        return False
    if "HX-Request" in request.headers:  # htmx pages carry the token: keep checking it
        return False
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:  # as in is_cross_site, the browser's own verdict comes first
        return fetch_site == "same-origin"
    origin = request.headers.get("Origin")
    return origin is not None and _own_origin(origin)


def refuse_cross_site():
    """before_request: 403 for a cross-site POST/PUT/PATCH/DELETE, even with a valid token."""
    if request.method in STATE_CHANGING_METHODS and is_cross_site():
        return error_response(403, CROSS_SITE_MESSAGE)
    return None


def init_app(app):
    app.before_request(refuse_cross_site)
