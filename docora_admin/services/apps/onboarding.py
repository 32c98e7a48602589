"""Onboarding an app (POST /admin/api/apps/onboard, the console's "Onboard an app" page), as
the original Docora does it (DOCORA_CONTRACT.md §2): the fields and their bounds, a base_url
that must be https and not an internal address (422 naming the rule; ALLOW_PRIVATE_WEBHOOKS
lifts it for development), a new app id and bearer token.

The token is shown once and stored as the original stores it, a bcrypt hash (cost 12), so the
original's API authenticates the app with it (bcrypt.compare). The client auth key is stored
AES-256-GCM-encrypted with ENCRYPTION_KEY (crypto.py, Docora's format): it signs every webhook.
"""
import re
import secrets
from urllib.parse import urlsplit

import bcrypt

from ... import crypto, db, runtime, webhook_address
from ...errors import ApiError
from ...repositories import apps as apps_repo
from ..team import audit
from ..delivery.payloads import iso_timestamp

TOKEN_COST = 12  # the original's SALT_ROUNDS
# As loose as the original's check (zod's email): something@host.tld, no spaces.
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
FIELDS = ("base_url", "app_name", "email", "website", "description", "client_auth_key")


def _text(body, name, required, low, high, what):
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    value = value.strip()
    if not low <= len(value) <= high:
        raise ApiError(400, f"{name} must be {what}")
    return value


def _url_shaped(value):
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a port that is not a number raises)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


def parse(body):
    """The onboarding fields of a JSON object or a form, checked. ApiError 400 naming the
    field, 422 naming the rule for an unsafe base_url."""
    base_url = _text(body, "base_url", True, 1, 2048, "at most 2,048 characters")
    if not _url_shaped(base_url):
        raise ApiError(400, "base_url must be a valid URL")
    problem = webhook_address.written_url_problem(base_url,
                                                  runtime.settings().allow_private_webhooks)
    if problem is not None:
        raise ApiError(422, problem)
    fields = {
        "base_url": base_url,
        "app_name": _text(body, "app_name", True, 3, 100, "3 to 100 characters"),
        "email": _text(body, "email", True, 3, 255, "at most 255 characters"),
        "website": _text(body, "website", False, 1, 2048, "at most 2,048 characters"),
        "description": _text(body, "description", False, 0, 500, "at most 500 characters"),
        "client_auth_key": _text(body, "client_auth_key", True, 16, 500,
                                 "16 to 500 characters"),
    }
    if not EMAIL_RE.fullmatch(fields["email"]):
        raise ApiError(400, "email must be a valid e-mail address")
    if fields["website"] is not None and not _url_shaped(fields["website"]):
        raise ApiError(400, "website must be a valid URL")
    return fields


def onboard(body):
    """Create an app from `body`; return {app_id, token, created_at} (the token in clear, this
    once), app_name and client_auth_key (for the console's one-time card). ApiError 400 / 422 as
    parse() says; nothing is written then."""
    fields = parse(body)
    app_id = f"app_{secrets.token_hex(12)}"
    token = f"docora_{secrets.token_hex(32)}"
    token_hash = bcrypt.hashpw(token.encode(), bcrypt.gensalt(TOKEN_COST)).decode()
    client_key = fields.pop("client_auth_key")
    key = crypto.encrypt(runtime.settings().encryption_key, client_key)
    with db.connection() as conn:
        created_at = apps_repo.insert_app(conn, app_id=app_id, token_hash=token_hash,
                                          client_auth_key_encrypted=key, **fields)
        audit.record(conn, "app.onboard", target=app_id,
                     details={"app_name": fields["app_name"], "base_url": fields["base_url"]})
    return {"app_id": app_id, "token": token,
            "created_at": iso_timestamp(created_at.timestamp()),
            "app_name": fields["app_name"], "client_auth_key": client_key}


def suggested_client_key():
    """A client auth key the form offers (the operator may paste the app's own instead)."""
    return secrets.token_urlsafe(32)
