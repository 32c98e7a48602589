"""Benchmark: the least CPU one signed webhook POST costs this machine, whatever the delivery
design around it (issue 25's ≤ 0.30 ms per delivered file, git included).

    .venv/bin/python bench/request_floor.py [--requests 20000] [--file-kb 16] [--repeat 3]

One keep-alive receiver (bench/keepalive_receiver.py, a process of its own, checking every
signature); then, in a fresh process per run, --requests `create` bodies of a --file-kb text
file (payloads.file_bodies, as a job sends them), each signed and POSTed with pycurl on
kept-alive connections, with the header and body callbacks WebhookClient sets, in three ways:

- easy×1: one thread, one handle (what bench/attempt_capture.py measures through WebhookClient);
- easy×8: eight threads, a handle each (a consumer's eight workers, each job one request at a
  time);
- multi×8: one thread driving eight handles with one CurlMulti (the design where one thread per
  consumer sends every job's requests), eight requests in flight.

Nothing else of a job is done: no claim, no journal, no git, no limiter. Reported per request:
the process's CPU (user and system) and the rate. The receiver's own ceiling bounds the rate.

Measured on a 2-core machine (2026-12-06, load ~0.5), 20,000 × 16 KB, medians of 3 interleaved:
easy×1 133.0 µs CPU per request (user 86, system 47), 2,605/s; easy×8 134.0 µs (94, 40),
2,568/s; multi×8 121.5 µs (82, 40), 2,714/s (the receiver's limit). One thread sending for all
jobs would save ~10% of a request's CPU, not the half that issue 25 asks of a delivered file.
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
WAYS = ("easy×1", "easy×8", "multi×8")

CHILD = r"""
import hmac, json, os, sys, threading, time
import pycurl
sys.path.insert(0, sys.argv[1])
from docora_admin.services.delivery import payloads
way, port, requests, file_kb, app_id, key = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), sys.argv[6], sys.argv[7].encode()
repository = payloads.encode_body({"repository_id": "repo_" + "cd" * 12,
                                   "github_url": "https://github.com/o/r", "owner": "o",
                                   "name": "r"})
content = ("line of text\n" * (file_kb * 1024 // 13)).encode()
body, = payloads.file_bodies(repository, "a" * 40, "docs/a.md", "b" * 64, content, None, None)
url = f"http://127.0.0.1:{port}/{app_id}/create"


def handle():
    c = pycurl.Curl()
    c.lines, c.parts = [], []
    c.setopt(pycurl.HEADERFUNCTION, c.lines.append)
    c.setopt(pycurl.WRITEFUNCTION, c.parts.append)
    c.setopt(pycurl.TCP_NODELAY, 1)
    c.setopt(pycurl.NOSIGNAL, 1)
    c.setopt(pycurl.URL, url)
    return c


def arm(c):
    # As WebhookClient._send: signed when it goes, the same header lines.
    timestamp = str(int(time.time()))
    signature = hmac.digest(key, f"{timestamp}.".encode() + body, "sha256").hex()
    c.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json",
                                 f"X-Docora-App-Id: {app_id}",
                                 f"X-Docora-Timestamp: {timestamp}",
                                 f"X-Docora-Signature: sha256={signature}", "Accept:", "Expect:"])
    c.setopt(pycurl.POSTFIELDSIZE, len(body))
    c.setopt(pycurl.POSTFIELDS, body)
    c.lines.clear()
    c.parts.clear()


def answered(c):
    if c.getinfo(pycurl.RESPONSE_CODE) != 200:
        raise SystemExit(f"HTTP {c.getinfo(pycurl.RESPONSE_CODE)}")


def easy(count):
    c = handle()
    for _ in range(count):
        arm(c)
        c.perform()
        answered(c)


def threads(count, width):
    workers = [threading.Thread(target=easy, args=(count // width + (n < count % width),))
               for n in range(width)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def multi(count, width):
    m, left, done = pycurl.CurlMulti(), count, 0
    for _ in range(width):
        c = handle()
        arm(c)
        m.add_handle(c)
        left -= 1
    while done < count:
        while m.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, finished, failed = m.info_read()
            if failed:
                raise SystemExit(f"curl: {failed[0][2]}")
            for c in finished:
                answered(c)
                done += 1
                m.remove_handle(c)
                if left > 0:
                    arm(c)
                    m.add_handle(c)
                    left -= 1
            if not queued:
                break
        if done < count:
            m.select(1.0)


easy(200)  # warm up: the connection, the caches
before, started = os.times(), time.perf_counter()
if way == "easy×1":
    easy(requests)
elif way == "easy×8":
    threads(requests, 8)
else:
    multi(requests, 8)
seconds, after = time.perf_counter() - started, os.times()
print(json.dumps({"user_us": (after.user - before.user) / requests * 1e6,
                  "system_us": (after.system - before.system) / requests * 1e6,
                  "rate": requests / seconds}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--file-kb", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with keepalive_receiver.running({APP_ID: KEY}) as port:
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"{args.requests} requests of {args.file_kb} KB per run")
        results = {way: [] for way in WAYS}
        for run in range(args.repeat):
            for way in WAYS:  # interleaved
                out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), way, str(port),
                                      str(args.requests), str(args.file_kb), APP_ID, KEY],
                                     capture_output=True, text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                results[way].append(result)
                print(f"  run {run + 1} {way:>8}: {_line(result)}", flush=True)
        print("medians:")
        for way, runs in results.items():
            print(f"  {way:>8}: " + _line({k: statistics.median(r[k] for r in runs)
                                           for k in runs[0]}))


def _line(result):
    return (f"{result['user_us'] + result['system_us']:6.1f} µs CPU per request (user "
            f"{result['user_us']:.0f}, system {result['system_us']:.0f}), "
            f"{result['rate']:,.0f} requests/s")


if __name__ == "__main__":
    main()
