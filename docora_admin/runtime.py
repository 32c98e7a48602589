"""What one process (web or worker) shares: its settings, its database pool and its Redis client.

Both entry points call start(): create_app() for the web, the Huey start-up hook for a worker.
Nothing here holds application state; that lives in PostgreSQL and Redis.
"""
import threading

import redis

from . import db

_lock = threading.Lock()
_settings = None
_redis = None

# Redis calls give up quickly so that endpoints can answer 503 instead of hanging.
REDIS_TIMEOUT_S = 2.0


def start(settings, pool_size=10):
    """Make settings, pool and Redis client available to this process. Calling it again for the
    same database and Redis (every consumer worker thread does) keeps the open pool."""
    global _settings, _redis
    with _lock:
        same_services = (_settings is not None and _redis is not None
                         and _settings.database_url == settings.database_url
                         and _settings.redis_url == settings.redis_url)
        _settings = settings
        if same_services:
            return
        db.open_pool(settings.database_url, max_size=pool_size)
        _redis = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            health_check_interval=30,
        )


def settings():
    if _settings is None:
        raise RuntimeError("runtime not started: call runtime.start(settings) first")
    return _settings


def redis_client():
    if _redis is None:
        raise RuntimeError("runtime not started: call runtime.start(settings) first")
    return _redis
