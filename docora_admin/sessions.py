"""Server-side sessions in Redis (Flask-Session) that survive a Redis outage as a clean 503.

Flask-Session lets a Redis error escape while the request context is being pushed, where no
error handler can turn it into a response: the client would get a bare 500 page. Here the
error is remembered on the request instead, and auth.refuse_anonymous answers 503.

An unchanged session is written back (its idle lifetime and its cookie renewed) at most every
REFRESH_S seconds, not on every request: a page that polls does not pay a Redis write per poll,
and a session's idle limit counts from its last request give or take REFRESH_S.
"""
import logging
import time

import redis
from flask import request
from flask_session.redis import RedisSessionInterface

log = logging.getLogger(__name__)

STORE_DOWN = "docora_admin.session_store_down"
VANISHED = "docora_admin.session_vanished"


# Probes and scrapes (views/ops.py) never touch a session: no Redis read, no cookie, no write.
NO_SESSION_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
REFRESH_S = 30
# When the session was last written back, by the clock of the process that wrote it.
WRITTEN_AT = "_written_at"


class OutageAwareRedisSessionInterface(RedisSessionInterface):
    def open_session(self, app, request):
        if request.path in NO_SESSION_PATHS:
            return self.make_null_session(app)
        return super().open_session(app, request)

    def _retrieve_session_data(self, store_id):
        try:
            data = super()._retrieve_session_data(store_id)
        except redis.RedisError as exc:
            request.environ[STORE_DOWN] = True
            log.error("session store unavailable: %s", exc.__class__.__name__)
            return None
        if data is None:
            # The browser named a session the store no longer has: it expired, was ended, or
            # the store was emptied (the login page says the session ended).
            request.environ[VANISHED] = True
        return data

    def should_set_storage(self, app, session):
        if not session.modified:
            # Another machine's clock may be behind this one's: a write "from the future" is
            # not taken as recent.
            age = time.time() - float(session.get(WRITTEN_AT, 0))
            if 0 <= age < REFRESH_S:
                return False
        return super().should_set_storage(app, session)

    def _upsert_session(self, session_lifetime, session, store_id):
        if request.environ.get(STORE_DOWN):
            return  # never overwrite a session we could not read
        session[WRITTEN_AT] = time.time()
        try:
            super()._upsert_session(session_lifetime, session, store_id)
        except redis.RedisError as exc:
            log.error("session not saved, store unavailable: %s", exc.__class__.__name__)

    def should_set_cookie(self, app, session):
        # A session we could not read must not replace the browser's cookie with a new id.
        return not request.environ.get(STORE_DOWN) and super().should_set_cookie(app, session)


def session_store_down():
    return bool(request.environ.get(STORE_DOWN))


def session_vanished():
    return bool(request.environ.get(VANISHED))


def init_app(app, client):
    app.session_interface = OutageAwareRedisSessionInterface(
        app=app, client=client, key_prefix="docora:session:", use_signer=False, permanent=True)
