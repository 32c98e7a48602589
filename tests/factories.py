"""Small helpers that insert rows the way Docora would."""
import itertools
import secrets
from datetime import datetime, timedelta, timezone

from docora_admin import crypto, db
from tests.conftest import ENCRYPTION_KEY_HEX

_counter = itertools.count(1)


class Seeder:
    def app(self, name=None, base_url="http://127.0.0.1:9/hooks", auth_key="client-secret-key"):
        n = next(_counter)
        app_id = f"app_{secrets.token_hex(12)}"
        with db.connection() as conn:
            conn.execute(
                "INSERT INTO apps (app_id, app_name, base_url, token_hash, "
                "client_auth_key_encrypted) VALUES (%s, %s, %s, %s, %s)",
                (app_id, name or f"App {n}", base_url, "hash",
                 crypto.encrypt(bytes.fromhex(ENCRYPTION_KEY_HEX), auth_key)))
        return app_id

    def repo(self, owner=None, name=None, url=None):
        n = next(_counter)
        repository_id = f"repo_{secrets.token_hex(12)}"
        owner, name = owner or f"owner{n}", name or f"repo{n}"
        with db.connection() as conn:
            conn.execute(
                "INSERT INTO repositories (repository_id, github_url, owner, name) "
                "VALUES (%s, %s, %s, %s)",
                (repository_id, url or f"https://github.com/{owner}/{name}-{n}", owner, name))
        return repository_id

    def link(self, app_id, repository_id, status="failed", last_error="POST /create → HTTP 500",
             retry_count=5, age_minutes=0):
        updated = datetime.now(timezone.utc) - timedelta(minutes=age_minutes)
        with db.connection() as conn:
            conn.execute(
                "INSERT INTO app_repositories (app_id, repository_id, status, last_error, "
                "retry_count, updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (app_id, repository_id, status, last_error if status == "failed" else None,
                 retry_count, updated))
        return app_id, repository_id

    def failed_links(self, app_id, count, **kwargs):
        """`count` failed links for one app, each on a new repository, oldest last."""
        return [self.link(app_id, self.repo(), age_minutes=i, **kwargs) for i in range(count)]

    def link_status(self, app_id, repository_id):
        with db.connection() as conn:
            row = conn.execute(
                "SELECT status, retry_count, last_error FROM app_repositories "
                "WHERE app_id = %s AND repository_id = %s", (app_id, repository_id)).fetchone()
        return row
