"""Benchmark: what an authenticated request costs now that every one loads its account
(PostgreSQL, by primary key) and checks its session is still listed (Redis HEXISTS), and what a
login costs with argon2id.

    TEST_DATABASE_URL=… TEST_REDIS_URL=… .venv/bin/python bench/session_check.py [--requests 2000]

Runs in-process through Flask's test client against the given (test) database and Redis db,
which it empties like the test suite does. Reports the median and p95 of GET /admin/api/session
(login rule, account load, role rule, JSON), of GET /admin/static/css/admin.css (no account
load) and of POST /admin/api/login.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(call, n):
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        response.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    os.environ.update({
        "DATABASE_URL": os.environ["TEST_DATABASE_URL"], "REDIS_URL": os.environ["TEST_REDIS_URL"],
        "SECRET_KEY": "bench-secret-key-123456", "ADMIN_USERNAME": "bench",
        "ADMIN_PASSWORD": "bench-password", "ENCRYPTION_KEY": "0f" * 32})
    from docora_admin import create_app, db

    db.migrate(os.environ["DATABASE_URL"])
    app = create_app()
    client = app.test_client()

    def login():
        return client.post("/admin/api/login",
                           json={"username": "bench", "password": "bench-password"})

    login_ms = timed(login, 50)
    session_ms = timed(lambda: client.get("/admin/api/session"), args.requests)
    static_ms = timed(lambda: client.get("/admin/static/css/admin.css"), args.requests)
    for name, (median, p95) in (("login", login_ms), ("GET /admin/api/session", session_ms),
                                ("GET static css", static_ms)):
        print(f"{name:<24} median {median:6.2f} ms   p95 {p95:6.2f} ms")


if __name__ == "__main__":
    main()
