"""The environment scripts/run gives the app, and scripts/flask gives the CLI: the database and
Redis chosen by services.Services (the machine's, or embedded ones under ./var/), this
checkout's dev secrets, and demo-sized delivery settings. The environment wins over all of it.

While scripts/run runs, var/run.json records the database and Redis it chose, so that
scripts/flask uses the same ones (an embedded server's port changes on every start, and a
forced embedded path, DOCORA_PG_PORT=1, is not the machine's server)."""
import json
import os
import secrets
from urllib.parse import quote, urlsplit, urlunsplit

from services import VAR, identity, still_running

RUN_STATE = VAR / "run.json"
URL_NAMES = ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL")
APP_ROLE = "docora_admin_app"  # docora_admin/db_roles.py's DEFAULT_ROLE

# Demo-sized delivery settings: the broken apps' links reach `failed` in about a minute (5
# attempts, 2 s apart and doubling, each timing out after 3 s), before their circuits would
# open (a threshold above the demo's attempts: the breaker stays on, and holds an app only when
# it fails far more than the demo does); an open circuit probes every 5–30 s, not 30 s–10 min.
DEMO_SETTINGS = {
    "RETRY_BACKOFF_SECONDS": "2",
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
    if "DATABASE_APP_PASSWORD" not in values:  # a dev.env from before the app's own role
        values["DATABASE_APP_PASSWORD"] = secrets.token_urlsafe(18)
        with open(path, "a") as out:
            out.write(f"DATABASE_APP_PASSWORD={values['DATABASE_APP_PASSWORD']}\n")
    return {k: os.environ.get(k) or v for k, v in values.items()}


def _as_app_role(owner_url, password):
    """The owner's database URL as the app's role (db_roles.DEFAULT_ROLE), which `migrate`
    makes with this password."""
    parts = urlsplit(owner_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{APP_ROLE}:{quote(password, safe='')}@{host}"))


def record_run(env):
    """scripts/run: note its URLs (mode 600: a URL may hold a password) for scripts/flask."""
    VAR.mkdir(exist_ok=True)
    fd = os.open(RUN_STATE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"run": identity(os.getpid()), **{k: env.get(k) for k in URL_NAMES}}, out)


def forget_run():
    try:
        if json.loads(RUN_STATE.read_text()).get("run") == identity(os.getpid()):
            RUN_STATE.unlink()
    except (OSError, ValueError):
        pass


def running_urls():
    """{DATABASE_URL, REDIS_URL} of the scripts/run running now, or None."""
    try:
        state = json.loads(RUN_STATE.read_text())
    except (OSError, ValueError):
        return None
    return {k: state.get(k) for k in URL_NAMES} if still_running(state.get("run")) else None


def app_environment(services, join_run=False):
    """os.environ plus what the app needs to run here (joining or starting the servers);
    `join_run`: the servers of the scripts/run running now, if one runs."""
    env = dict(os.environ)
    running = running_urls() if join_run else None
    if running and not os.environ.get("DATABASE_URL"):
        services.say("PostgreSQL: the database scripts/run is using")
        env["DATABASE_URL"] = running["DATABASE_URL"]
    else:
        env["DATABASE_URL"] = services.database_url("docora_admin", "DATABASE_URL")
    if running and not os.environ.get("REDIS_URL"):
        services.say("Redis: the one scripts/run is using")
        env["REDIS_URL"] = running["REDIS_URL"]
    else:
        env["REDIS_URL"] = services.redis_url(0, "REDIS_URL")
    env.update(dev_secrets())
    if running and not os.environ.get("DATABASE_URL"):
        if running.get("DATABASE_OWNER_URL"):
            env["DATABASE_OWNER_URL"] = running["DATABASE_OWNER_URL"]
    elif not os.environ.get("DATABASE_URL"):
        # Least privilege, as the README asks of a deployment: `migrate` runs as the owner and
        # makes the app's role; the web, the worker and the CLI connect as that role.
        env["DATABASE_OWNER_URL"] = env["DATABASE_URL"]
        env["DATABASE_URL"] = _as_app_role(env["DATABASE_URL"], env["DATABASE_APP_PASSWORD"])
    env.setdefault("DOCORA_GIT_CACHE", str(VAR / "git-cache"))
    env["PYTHONUNBUFFERED"] = "1"  # log lines appear as they happen
    for name, value in DEMO_SETTINGS.items():
        env.setdefault(name, value)
    return env
