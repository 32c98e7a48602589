"""The environment scripts/run gives the app, and scripts/flask gives the CLI: the database and
Redis chosen by services.Services (the machine's, or embedded ones under ./var/), this
checkout's dev secrets, and demo-sized delivery settings. The environment wins over all of it."""
import os
import secrets

from services import VAR

# Demo-sized delivery settings: the broken apps' links reach `failed` in about a minute (5
# attempts, 3 s apart and doubling, each timing out after 3 s), before their circuits would
# open (a threshold above the demo's attempts: the breaker stays on, and holds an app only when
# it fails far more than the demo does); an open circuit probes every 5–30 s, not 30 s–10 min.
DEMO_SETTINGS = {
    "RETRY_BACKOFF_SECONDS": "3",
    "DELIVERY_TIMEOUT_S": "3",
    "CIRCUIT_FAILURE_THRESHOLD": "500",
    "CIRCUIT_PROBE_SECONDS": "5",
    "CIRCUIT_PROBE_MAX_SECONDS": "30",
    # The demo receivers are plain http on 127.0.0.1, which production refuses.
    "ALLOW_PRIVATE_WEBHOOKS": "true",
}


def dev_secrets():
    """Secrets for this checkout: made once, kept in var/dev.env (git-ignored, mode 600) so that
    sessions and encrypted demo data survive a restart. The environment wins over the file."""
    path = VAR / "dev.env"
    if not path.exists():
        VAR.mkdir(exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Made by scripts/run for local development only. Delete it to get new ones\n"
                      "# (the demo data encrypted with the old ENCRYPTION_KEY then stops decrypting).\n"
                      f"SECRET_KEY={secrets.token_hex(32)}\n"
                      f"ENCRYPTION_KEY={secrets.token_hex(32)}\n"
                      "ADMIN_USERNAME=admin\n"
                      f"ADMIN_PASSWORD={secrets.token_urlsafe(12)}\n")
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return {k: os.environ.get(k) or v for k, v in values.items()}


def app_environment(services):
    """os.environ plus what the app needs to run here (joining or starting the servers)."""
    env = dict(os.environ)
    env["DATABASE_URL"] = services.database_url("docora_admin", "DATABASE_URL")
    env["REDIS_URL"] = services.redis_url(0, "REDIS_URL")
    env.update(dev_secrets())
    env["PYTHONUNBUFFERED"] = "1"  # log lines appear as they happen
    for name, value in DEMO_SETTINGS.items():
        env.setdefault(name, value)
    return env
