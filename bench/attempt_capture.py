"""Benchmark: what the attempt inspector costs a delivering client, per request and per attempt
(issue 26; the delivery path's budget is issue 25's ≤ 0.30 ms of consumer CPU per file).

    .venv/bin/python bench/attempt_capture.py [--code NAME=PATH ...] [--requests 20000]
        [--file-kb 16] [--repeat 5]

One keep-alive receiver (bench/keepalive_receiver.py, a process of its own, checking every
signature); then, for each --code checkout (default: this one) in turn, interleaved --repeat
times, a fresh process imports that checkout's docora_admin and sends --requests signed
`create` POSTs of a --file-kb file with its WebhookClient, one thread, one kept-alive
connection. Reported: the client process's CPU per request (user + system, medians), and, where
the checkout has services/delivery/exchange.py, the CPU of exchange.stored() per attempt (what
is done once per attempt: bounding and cleaning its last request and answer for the row).

Needs no PostgreSQL or Redis: WebhookClient reads only its settings. Compare with main:
`--code before=/work/main --code after=.`.

Measured on a 2-core machine (load ~0.5), 20,000 requests of 16 KB, medians of 5 interleaved
runs against 3060707 (before the inspector): 121.8 µs CPU per request before, 121.5 µs after;
stored() 7.6 µs per attempt.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import keepalive_receiver  # noqa: E402

APP_ID = "app_" + "ab" * 12
KEY = "bench-client-key-0123456789"

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from docora_admin import config, runtime
from docora_admin.services.delivery import payloads
from docora_admin.services.delivery.webhook_client import WebhookClient
runtime._settings = config.load_settings(dict(os.environ))
port, requests, file_kb, app_id, key = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    sys.argv[5], sys.argv[6]
repository = payloads.encode_body({"repository_id": "repo_" + "cd" * 12,
                                   "github_url": "https://github.com/o/r", "owner": "o",
                                   "name": "r"})
content = ("line of text\n" * (file_kb * 1024 // 13)).encode()
bodies = list(payloads.file_bodies(repository, "a" * 40, "docs/a.md", "b" * 64, content, None,
                                   None))
client = WebhookClient(f"http://127.0.0.1:{port}/{app_id}", app_id, key, 30, keep_handles=True)
for _ in range(200):  # warm up: the connection, the caches
    client.post("create", bodies[0])
started = time.process_time()
for _ in range(requests):
    client.post("create", bodies[0])
per_request_us = (time.process_time() - started) / requests * 1e6
per_attempt_us = None
try:
    from docora_admin.services.delivery import exchange
except ImportError:
    exchange = None
if exchange is not None and client.last is not None:
    rounds = 2000
    started = time.process_time()
    for _ in range(rounds):
        exchange.stored(client.last, runtime.settings().attempt_excerpt_bytes)
    per_attempt_us = (time.process_time() - started) / rounds * 1e6
client.close()
print(json.dumps({"per_request_us": per_request_us, "per_attempt_us": per_attempt_us}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", default=[],
                        help="NAME=PATH of a checkout whose WebhookClient is measured")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--file-kb", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    codes = [c.split("=", 1) for c in args.code] or [["this", str(ROOT)]]
    env = dict(os.environ, DATABASE_URL="postgresql://bench@127.0.0.1:1/none",
               REDIS_URL="redis://127.0.0.1:1/0", SECRET_KEY="bench-secret-key-0123456789",
               ADMIN_USERNAME="bench", ADMIN_PASSWORD="bench-password",
               ENCRYPTION_KEY="00" * 32, ALLOW_PRIVATE_WEBHOOKS="true")
    with keepalive_receiver.running({APP_ID: KEY}) as port:
        results = {name: [] for name, _ in codes}
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"{args.requests} requests of {args.file_kb} KB per run, one thread")
        for run in range(args.repeat):
            for name, path in codes:
                out = subprocess.run([sys.executable, "-c", CHILD, str(Path(path).resolve()),
                                      str(port), str(args.requests), str(args.file_kb), APP_ID,
                                      KEY], env=env, capture_output=True, text=True,
                                     cwd=path, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                results[name].append(result)
                attempt = result["per_attempt_us"]
                print(f"  run {run + 1} {name:>8}: {result['per_request_us']:7.1f} µs CPU per "
                      "request" + (f", stored() {attempt:6.1f} µs per attempt"
                                   if attempt is not None else ""), flush=True)
        print("medians:")
        for name, runs in results.items():
            per_request = statistics.median(r["per_request_us"] for r in runs)
            attempts = [r["per_attempt_us"] for r in runs if r["per_attempt_us"] is not None]
            print(f"  {name:>8}: {per_request:7.1f} µs CPU per request"
                  + (f", stored() {statistics.median(attempts):6.1f} µs per attempt"
                     if attempts else ""))


if __name__ == "__main__":
    main()
