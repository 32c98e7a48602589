"""Refusing state-changing requests that a browser says come from another site.

A CSRF token proves the page was ours; this also covers the case it cannot: a token that leaked
(or a form without one, like the login form). Browsers send `Sec-Fetch-Site` (all current ones)
or at least `Origin` on a POST. Scripts, curl and test clients send neither and go on to the CSRF
check as before.
"""
from urllib.parse import urlsplit

from flask import request

from .errors import error_response

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
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
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:  # "null" (sandboxed frames, file://) or garbage
        return True
    return (_origin_tuple(parts.scheme, parts.netloc)
            != _origin_tuple(request.scheme, request.host))


def refuse_cross_site():
    """before_request: 403 for a cross-site POST/PUT/PATCH/DELETE, even with a valid token."""
    if request.method in STATE_CHANGING_METHODS and is_cross_site():
        return error_response(403, CROSS_SITE_MESSAGE)
    return None


def init_app(app):
    app.before_request(refuse_cross_site)
