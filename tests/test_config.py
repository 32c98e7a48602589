import subprocess
import sys

import pytest

from docora_admin.config import ConfigError, load_settings
from tests.conftest import TEST_ENV

pytestmark = pytest.mark.no_services


def _env(**changes):
    env = dict(TEST_ENV)
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def test_valid_settings():
    settings = load_settings(_env(BULK_CHUNK_SIZE="250"))
    assert settings.bulk_chunk_size == 250
    assert settings.max_retry_attempts == 5
    assert len(settings.encryption_key) == 32
    assert settings.admin_password == TEST_ENV["ADMIN_PASSWORD"]
    assert settings.admin_password_hash is None
    assert TEST_ENV["ADMIN_PASSWORD"] not in repr(settings)  # never in a log line
    assert (settings.session_idle_minutes, settings.session_max_hours) == (60, 12)
    assert settings.audit_retention_days == 400
    assert load_settings(_env(ALLOW_PRIVATE_WEBHOOKS=None)).allow_private_webhooks is False


@pytest.mark.parametrize("given", [
    "scrypt:32768:8:1$salt$" + "ab" * 32, "pbkdf2:sha256:600000$salt$" + "cd" * 32,
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"])
def test_admin_password_hash_of_werkzeug_or_argon2_is_taken_as_given(given):
    settings = load_settings(_env(ADMIN_PASSWORD=None, ADMIN_PASSWORD_HASH=given))
    assert settings.admin_password_hash == given and settings.admin_password is None


@pytest.mark.parametrize("changes,name", [
    ({"DATABASE_URL": None}, "DATABASE_URL"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"REDIS_URL": ""}, "REDIS_URL"),
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ({"ADMIN_USERNAME": None}, "ADMIN_USERNAME"),
    ({"ADMIN_PASSWORD": None}, "ADMIN_PASSWORD"),
    ({"ADMIN_PASSWORD": None, "ADMIN_PASSWORD_HASH": "plaintext"}, "ADMIN_PASSWORD_HASH"),
    ({"ENCRYPTION_KEY": "abc"}, "ENCRYPTION_KEY"),
    ({"ENCRYPTION_KEY": "zz" * 32}, "ENCRYPTION_KEY"),
    ({"MAX_RETRY_ATTEMPTS": "five"}, "MAX_RETRY_ATTEMPTS"),
    ({"MAX_RETRY_ATTEMPTS": "0"}, "MAX_RETRY_ATTEMPTS"),
    ({"BULK_CHUNK_SIZE": "-3"}, "BULK_CHUNK_SIZE"),
    ({"SESSION_COOKIE_SECURE": "maybe"}, "SESSION_COOKIE_SECURE"),
    ({"ALLOW_PRIVATE_WEBHOOKS": "sometimes"}, "ALLOW_PRIVATE_WEBHOOKS"),
    ({"ADMIN_USERNAME": "has space"}, "ADMIN_USERNAME"),
    ({"ADMIN_PASSWORD": "short"}, "ADMIN_PASSWORD"),
    ({"SESSION_IDLE_MINUTES": "0"}, "SESSION_IDLE_MINUTES"),
    ({"SESSION_MAX_HOURS": "twelve"}, "SESSION_MAX_HOURS"),
    ({"AUDIT_RETENTION_DAYS": "0"}, "AUDIT_RETENTION_DAYS"),
])
def test_bad_setting_names_the_variable(changes, name):
    with pytest.raises(ConfigError) as excinfo:
        load_settings(_env(**changes))
    message = str(excinfo.value)
    assert message.startswith(name) and "\n" not in message


def test_start_up_exits_non_zero_with_one_line():
    env = _env(ENCRYPTION_KEY="tooshort", PATH="/usr/bin:/bin")
    result = subprocess.run(
        [sys.executable, "-c", "from docora_admin import create_app; create_app()"],
        env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["Configuration error: ENCRYPTION_KEY must be exactly 64 hex characters, "
                     "got 8 characters"]
