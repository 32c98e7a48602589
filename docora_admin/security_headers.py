"""Headers every response carries: what the browser may load, frame, sniff, send and cache.

The CSP allows only our own files: htmx from static/vendor/, our stylesheet, no inline script or
style (htmx is configured in base.html not to inject its indicator <style> and not to eval).
"""
from flask import current_app, request

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}


# With SESSION_COOKIE_SECURE=true the console is served over HTTPS: browsers are told to keep to
# it (a year, as OWASP advises; subdomains are not ours to decide).
HSTS = "max-age=31536000"


def add_security_headers(response):
    """after_request: the headers above on every response (and HSTS once the session cookie is
    secure); `no-store` on everything under /admin but static files, since pages carry a CSRF
    token and live state."""
    response.headers.update(HEADERS)
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        response.headers["Strict-Transport-Security"] = HSTS
    if request.path.startswith("/admin") and request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app):
    app.after_request(add_security_headers)
