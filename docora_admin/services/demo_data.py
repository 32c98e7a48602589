"""A believable demo data set for an empty database: apps, repositories, links, failures."""
import random
import secrets
from datetime import datetime, timedelta, timezone

from .. import crypto, db
from ..repositories import demo as demo_repo

APP_NAMES = [
    ("Acme Docs Portal", "https://docs.acme.example/webhooks/docora"),
    ("Northwind Knowledge Base", "https://kb.northwind.example/hooks/docora"),
    ("Globex Static Site", "https://deploy.globex.example/api/docora"),
    ("Initech Wiki Mirror", "https://wiki.initech.example/docora"),
    ("Umbrella Changelog Bot", "https://bot.umbrella.example/docora"),
    ("Hooli Search Indexer", "https://indexer.hooli.example/ingest/docora"),
]
OWNERS = ["acme", "northwind", "globex-oss", "initech", "umbrella-labs", "hooli", "piedpiper",
          "stark-ind", "wayne-tech", "tyrell"]
REPO_WORDS = ["docs", "handbook", "api-reference", "website", "design-system", "runbooks",
              "changelog", "guides", "sdk-python", "sdk-js", "infra", "blog", "specs", "cli",
              "examples", "templates", "playbooks", "onboarding", "policies", "faq"]
ERRORS = [
    "POST /create → HTTP 500 Internal Server Error",
    "POST /update → HTTP 502 Bad Gateway",
    "POST /create → HTTP 503 Service Unavailable",
    "timeout after 30 s waiting for POST /update",
    "connection refused: {host}:443",
    "POST /create → HTTP 401: invalid signature (X-Docora-Signature mismatch)",
    "POST /delete → HTTP 404 Not Found",
    "TLS handshake failed: certificate has expired",
    "git: repository not found",
    "POST /update → HTTP 413 Payload Too Large",
]


def _hex24():
    return secrets.token_hex(12)


def build(encryption_key, seed=None, repositories=160):
    """Rows to insert: (apps, repositories, links), deterministic for a given seed."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    apps = []
    for name, base_url in APP_NAMES:
        apps.append({
            "app_id": f"app_{_hex24()}", "app_name": name, "base_url": base_url,
            "token_hash": secrets.token_hex(32),
            "email": f"ops@{base_url.split('/')[2].split('.', 1)[1]}",
            "client_auth_key_encrypted": crypto.encrypt(encryption_key, secrets.token_hex(32)),
        })
    names = rng.sample([(o, w) for o in OWNERS for w in REPO_WORDS],
                       min(repositories, len(OWNERS) * len(REPO_WORDS)))
    repos = []
    for owner, word in names:
        repos.append({"repository_id": f"repo_{_hex24()}", "owner": owner, "name": word,
                      "github_url": f"https://github.com/{owner}/{word}",
                      "is_private": rng.random() < 0.3})
    links = []
    for repo in repos:
        for app in rng.sample(apps, rng.choice([1, 1, 1, 2, 2, 3])):
            roll = rng.random()
            status = ("failed" if roll < 0.22 else "synced" if roll < 0.85
                      else "pending_snapshot" if roll < 0.95 else "scanning")
            error = None
            if status == "failed":
                error = rng.choice(ERRORS).format(host=app["base_url"].split("/")[2])
            changed = now - timedelta(minutes=rng.randint(1, 60 * 24 * 14))
            links.append({
                "app_id": app["app_id"], "repository_id": repo["repository_id"],
                "status": status, "last_error": error,
                "retry_count": 5 if status == "failed" else rng.randint(0, 2),
                "last_scanned_at": changed if status == "synced" else None,
                "updated_at": changed,
            })
    return apps, repos, links


def load_if_empty(encryption_key, seed=None):
    """Insert the demo set when there are no apps yet; return how many links were created."""
    with db.connection() as conn:
        if demo_repo.has_any_app(conn):
            return 0
        apps, repos, links = build(encryption_key, seed)
        demo_repo.insert_all(conn, apps, repos, links)
    return len(links)
