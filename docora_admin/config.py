"""Settings from the environment, validated once at start-up.

A missing or malformed value raises ConfigError whose message names the variable and says what
to do; entry points turn it into one line on stderr and a non-zero exit.
"""
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from . import alert_settings, passwords
from .alert_settings import AlertSettings


# Rows per bulk-retry chunk: one statement and one commit each, and the cancel check between
# chunks. 1,000 rather than 100: per-chunk costs (a round trip, planning, a commit) hold 100-row
# chunks to ~14,000 rows/s on a 2-core machine against ~24,000 rows/s at 1,000
# (bench/bulk_retry.py), while a 1,000-row chunk still takes only ~40 ms, so a cancel still lands
# at once.
DEFAULT_BULK_CHUNK_SIZE = 1000

# Our largest legitimate body is a login or a retry form of a few hundred bytes; 1 MiB leaves
# room for any future form while an anonymous client can no longer make a worker buffer 200 MiB.
DEFAULT_MAX_REQUEST_BODY_BYTES = 1024 * 1024

# The attempt inspector keeps at most this much of each body (request and response) per attempt:
# enough for any error page or JSON error worth reading. At the default 2 KiB, 20 kept attempts
# of each of 1,000 links hold ~80 MB of bodies at most.
MAX_ATTEMPT_EXCERPT_BYTES = 64 * 1024


# Account names: what the console and the audit trail show, safe in a URL path segment.
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    secret_key: str
    max_request_body_bytes: int
    admin_username: str
    # Exactly one of the two is set. The account named ADMIN_USERNAME is brought in step with it
    # at start-up (services/team/accounts.py); kept out of repr so it never lands in a log.
    admin_password: str | None = field(repr=False)
    admin_password_hash: str | None = field(repr=False)
    encryption_key: bytes
    max_retry_attempts: int
    bulk_chunk_size: int
    bulk_stall_seconds: int
    bulk_chunk_delay_ms: int
    rescan_interval_minutes: int
    retry_backoff_seconds: int
    delivery_timeout_s: int
    session_cookie_secure: bool
    job_lease_seconds: int
    lost_job_grace_seconds: int
    watchdog_interval_seconds: int
    attempt_log_retention_days: int
    metrics_token: str
    log_format: str
    log_level: str
    session_idle_minutes: int
    session_max_hours: int
    audit_retention_days: int
    # Delivery control (services/control/delivery_control.py, services/control/app_limits.py).
    circuit_failure_threshold: int = 10
    circuit_probe_seconds: int = 30
    circuit_probe_max_seconds: int = 600
    app_rate_per_second: int = 0
    app_max_concurrency: int = 8
    retry_after_max_seconds: int = 3600
    git_share_seconds: int = 5
    delivery_connections_per_host: int = 32
    delivery_streams_per_link: int = 4
    # The per-repository git circuit (services/control/repository_circuit.py).
    repository_failure_threshold: int = 5
    repository_cooldown_minutes: int = 30
    # Webhooks to localhost and private addresses (webhook_address.py): for development only.
    allow_private_webhooks: bool = False
    # The attempt inspector (services/delivery/exchange.py, services/delivery/attempt_log.py).
    attempt_excerpt_bytes: int = 2048
    attempt_detail_retention_days: int = 7
    attempt_detail_per_link: int = 20
    # Alerts (services/alerts/).
    alerts: AlertSettings = AlertSettings()


def _required(env, name, hint):
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: {hint}")
    return value


def _url(env, name, schemes, hint):
    value = _required(env, name, hint)
    if urlparse(value).scheme not in schemes:
        raise ConfigError(f"{name} must be a {'/'.join(schemes)}:// URL, got scheme "
                          f"{urlparse(value).scheme or 'none'!r}")
    return value


def _int(env, name, default, minimum, maximum):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _bool(env, name, default):
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _encryption_key(env):
    raw = _required(env, "ENCRYPTION_KEY", "set it to 64 hex characters (32 bytes), "
                    "e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", raw):
        raise ConfigError(f"ENCRYPTION_KEY must be exactly 64 hex characters, got {len(raw)} "
                          "characters")
    return bytes.fromhex(raw)


def _username(env):
    value = _required(env, "ADMIN_USERNAME", "set it to the admin's login name")
    if not USERNAME_RE.fullmatch(value):
        raise ConfigError("ADMIN_USERNAME must be 1-64 letters, digits, '.', '_', '@' or '-', "
                          "starting with a letter or digit")
    return value


def _admin_password(env):
    """(password, None) or (None, hash): ADMIN_PASSWORD_HASH wins when both are set."""
    given_hash = env.get("ADMIN_PASSWORD_HASH", "").strip()
    if given_hash:
        if not passwords.is_supported_hash(given_hash):
            raise ConfigError("ADMIN_PASSWORD_HASH must be an argon2id hash ($argon2id$…) or a "
                              "werkzeug hash (scrypt:… or pbkdf2:…); make one with "
                              "`flask --app app hash-password`")
        return None, given_hash
    password = env.get("ADMIN_PASSWORD", "")
    if not password:
        raise ConfigError("ADMIN_PASSWORD is not set: set ADMIN_PASSWORD or ADMIN_PASSWORD_HASH")
    if (problem := passwords.problem(password)) is not None:
        raise ConfigError(f"ADMIN_PASSWORD is not usable: {problem}")
    return password, None


def _metrics_token(env):
    token = env.get("METRICS_TOKEN", "").strip()
    if token and (len(token) < 16 or not token.isprintable() or " " in token):
        raise ConfigError("METRICS_TOKEN must be at least 16 printable characters without "
                          "spaces, e.g. `python -c 'import secrets; print(secrets.token_hex(24))'`"
                          "; leave it unset to turn /metrics off")
    return token


def _choice(env, name, default, choices):
    raw = env.get(name, "").strip()
    value = raw.lower() if name != "LOG_LEVEL" else raw.upper()
    if not value:
        return default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _multiprocess_dir(env):
    path = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if path and not (os.path.isdir(path) and os.access(path, os.W_OK)):
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR must be an existing, writable directory "
                          f"(empty it before the web processes start), got {path!r}")


def load_settings(env=None):
    """Read and validate every setting; raise ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    settings = _load(env)
    _multiprocess_dir(env)
    worker_groups(env)
    if settings.job_lease_seconds < 3 * settings.watchdog_interval_seconds:
        raise ConfigError(
            f"JOB_LEASE_SECONDS ({settings.job_lease_seconds}) must be at least three times "
            f"WATCHDOG_INTERVAL_SECONDS ({settings.watchdog_interval_seconds}): the watchdog "
            "renews leases once per interval")
    return settings


def worker_groups(env=None):
    """(WORKER_GROUPS, WORKER_GROUP): how many worker groups the fleet's queue is split into
    (1 to 64, default 1: one queue) and which of them this consumer serves first (default 0).
    Read apart from Settings: Huey's storage needs them when it is made, at import
    (worker_groups.py)."""
    env = os.environ if env is None else env
    count = _int(env, "WORKER_GROUPS", 1, 1, 64)
    group = _int(env, "WORKER_GROUP", 0, 0, 63)
    if group >= count:
        raise ConfigError(f"WORKER_GROUP must be below WORKER_GROUPS ({count}), got {group}")
    return count, group


def _load(env):
    secret_key = _required(env, "SECRET_KEY", "set it to a long random string, e.g. "
                           "`python -c 'import secrets; print(secrets.token_hex(32))'`")
    if len(secret_key) < 16:
        raise ConfigError("SECRET_KEY must be at least 16 characters long")
    admin_password, admin_password_hash = _admin_password(env)
    return Settings(
        database_url=_url(env, "DATABASE_URL", ("postgresql", "postgres"),
                          "set it to e.g. postgresql://postgres@127.0.0.1:5432/docora"),
        redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix"),
                       "set it to e.g. redis://127.0.0.1:6379/0"),
        secret_key=secret_key,
        max_request_body_bytes=_int(env, "MAX_REQUEST_BODY_BYTES", DEFAULT_MAX_REQUEST_BODY_BYTES,
                                    1024, 100 * 1024 * 1024),
        admin_username=_username(env),
        admin_password=admin_password,
        admin_password_hash=admin_password_hash,
        encryption_key=_encryption_key(env),
        max_retry_attempts=_int(env, "MAX_RETRY_ATTEMPTS", 5, 1, 100),
        bulk_chunk_size=_int(env, "BULK_CHUNK_SIZE", DEFAULT_BULK_CHUNK_SIZE, 1, 10_000),
        bulk_stall_seconds=_int(env, "BULK_STALL_SECONDS", 30, 1, 3600),
        bulk_chunk_delay_ms=_int(env, "BULK_CHUNK_DELAY_MS", 0, 0, 60_000),
        rescan_interval_minutes=_int(env, "RESCAN_INTERVAL_MINUTES", 360, 1, 100_000),
        retry_backoff_seconds=_int(env, "RETRY_BACKOFF_SECONDS", 60, 1, 86_400),
        delivery_timeout_s=_int(env, "DELIVERY_TIMEOUT_S", 30, 1, 600),
        session_cookie_secure=_bool(env, "SESSION_COOKIE_SECURE", False),
        job_lease_seconds=_int(env, "JOB_LEASE_SECONDS", 60, 5, 3600),
        lost_job_grace_seconds=_int(env, "LOST_JOB_GRACE_SECONDS", 20, 1, 3600),
        watchdog_interval_seconds=_int(env, "WATCHDOG_INTERVAL_SECONDS", 5, 1, 60),
        attempt_log_retention_days=_int(env, "ATTEMPT_LOG_RETENTION_DAYS", 30, 1, 3650),
        metrics_token=_metrics_token(env),
        log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
        log_level=_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        session_idle_minutes=_int(env, "SESSION_IDLE_MINUTES", 60, 1, 7 * 24 * 60),
        session_max_hours=_int(env, "SESSION_MAX_HOURS", 12, 1, 30 * 24),
        audit_retention_days=_int(env, "AUDIT_RETENTION_DAYS", 400, 1, 36_500),
        circuit_failure_threshold=_int(env, "CIRCUIT_FAILURE_THRESHOLD", 10, 1, 10_000),
        circuit_probe_seconds=_int(env, "CIRCUIT_PROBE_SECONDS", 30, 1, 86_400),
        circuit_probe_max_seconds=_int(env, "CIRCUIT_PROBE_MAX_SECONDS", 600, 1, 86_400),
        app_rate_per_second=_int(env, "APP_RATE_PER_SECOND", 0, 0, 1_000_000),
        app_max_concurrency=_int(env, "APP_MAX_CONCURRENCY", 8, 0, 10_000),
        retry_after_max_seconds=_int(env, "RETRY_AFTER_MAX_SECONDS", 3600, 1, 86_400),
        git_share_seconds=_int(env, "GIT_SHARE_SECONDS", 5, 0, 3600),
        delivery_connections_per_host=_int(env, "DELIVERY_CONNECTIONS_PER_HOST", 32, 1, 1000),
        delivery_streams_per_link=_int(env, "DELIVERY_STREAMS_PER_LINK", 4, 1, 64),
        repository_failure_threshold=_int(env, "REPOSITORY_FAILURE_THRESHOLD", 5, 1, 10_000),
        repository_cooldown_minutes=_int(env, "REPOSITORY_COOLDOWN_MINUTES", 30, 1, 10_080),
        allow_private_webhooks=_bool(env, "ALLOW_PRIVATE_WEBHOOKS", False),
        attempt_excerpt_bytes=_int(env, "ATTEMPT_EXCERPT_BYTES", 2048, 0,
                                   MAX_ATTEMPT_EXCERPT_BYTES),
        attempt_detail_retention_days=_int(env, "ATTEMPT_DETAIL_RETENTION_DAYS", 7, 1, 3650),
        attempt_detail_per_link=_int(env, "ATTEMPT_DETAIL_PER_LINK", 20, 1, 1000),
        alerts=alert_settings.load(env, ConfigError, _int, _bool),
    )

