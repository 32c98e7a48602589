"""A believable demo data set for an empty database: apps, repositories, links, failures."""
import random
import secrets
from datetime import datetime, timedelta, timezone

from ... import crypto, db
from ...repositories import demo as demo_repo

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
    "connection refused: {host}",
    "POST /create → HTTP 401: invalid signature (X-Docora-Signature mismatch)",
    "POST /delete → HTTP 404 Not Found",
    "TLS handshake failed: certificate has expired",
    "git: repository not found",
    "POST /update → HTTP 413 Payload Too Large",
]


def _hex24():
    return secrets.token_hex(12)


# With a live demo (local repositories and receiver), these apps are broken until fixed.
BROKEN_APPS = {"Globex Static Site": "error", "Initech Wiki Mirror": "timeout"}


def build(encryption_key, seed=None, repositories=160, repository_urls=None,
          receiver_url=None):
    """Rows to insert: (apps, repositories, links, {app_id: (auth key, name)}), deterministic
    for a given seed. With repository_urls ({"owner/name": url}) and receiver_url the demo is
    live: the repositories are those, every app posts to the receiver, and most links start in
    pending_snapshot so that the worker syncs (or fails) them for real."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    apps, keys = [], {}
    for name, base_url in APP_NAMES:
        app_id = f"app_{_hex24()}"
        key = secrets.token_hex(32)
        keys[app_id] = (key, name)
        apps.append({
            "app_id": app_id, "app_name": name,
            "base_url": f"{receiver_url.rstrip('/')}/apps/{app_id}" if receiver_url else base_url,
            "token_hash": secrets.token_hex(32),
            "email": f"ops@{base_url.split('/')[2].split('.', 1)[1]}",
            "client_auth_key_encrypted": crypto.encrypt(encryption_key, key),
        })
    if repository_urls:
        names = [tuple(full.split("/", 1)) for full in sorted(repository_urls)]
    else:
        names = rng.sample([(o, w) for o in OWNERS for w in REPO_WORDS],
                           min(repositories, len(OWNERS) * len(REPO_WORDS)))
    repos = []
    for owner, word in names:
        url = (repository_urls or {}).get(f"{owner}/{word}", f"https://github.com/{owner}/{word}")
        repos.append({"repository_id": f"repo_{_hex24()}", "owner": owner, "name": word,
                      "github_url": url, "is_private": rng.random() < 0.3})
    links = []
    for repo in repos:
        # A live demo has fewer repositories (each a real git repository): link them wider.
        fan_out = [2, 3, 3, 4] if repository_urls else [1, 1, 1, 2, 2, 3]
        for app in rng.sample(apps, rng.choice(fan_out)):
            roll = rng.random()
            if repository_urls:  # live: the worker decides; some failed from "earlier"
                status = "failed" if roll < 0.25 else "pending_snapshot"
            else:
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
    return apps, repos, links, keys


def load_if_empty(encryption_key, seed=None, repository_urls=None, receiver_url=None):
    """Insert the demo set when there are no apps yet. Returns (links created,
    {app_id: {"key", "mode", "name"}} for a live demo's receiver), or (0, None)."""
    from ..jobs import job_queue

    made = {}

    def insert(conn):
        if demo_repo.has_any_app(conn):
            return []
        apps, repos, made["links"], made["keys"] = build(
            encryption_key, seed, repository_urls=repository_urls, receiver_url=receiver_url)
        demo_repo.insert_all(conn, apps, repos, made["links"])
        return demo_repo.make_pending_links_due(conn)

    # Its pending links are queued after the commit, as every reset is (the sweeper would
    # otherwise call them lost).
    job_queue.queue_in_batches(insert, None)
    if not made:
        return 0, None
    receiver = {app_id: {"key": key, "name": name, "mode": BROKEN_APPS.get(name, "ok")}
                for app_id, (key, name) in made["keys"].items()}
    return len(made["links"]), receiver


def broken_demo_apps():
    """{app_id: receiver mode} of the demo apps broken on purpose (BROKEN_APPS, by name)."""
    with db.connection() as conn:
        ids = demo_repo.app_ids_named(conn, BROKEN_APPS)
    return {app_id: BROKEN_APPS[name] for name, app_id in ids.items()}


def redeliver(app_ids):
    """Make these apps' links deliver all their files again now (what `demo-break` does once
    the receiver answers them as broken, so they fail for real). Returns how many were queued."""
    from ..jobs import job_queue

    if not app_ids:
        return 0
    return job_queue.queue_in_batches(
        lambda conn: demo_repo.redeliver_links_of(conn, list(app_ids)), None)
