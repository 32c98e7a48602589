"""The per-app limiter against real Redis: blocks of rate turns shared by many threads and jobs
keep the rate, cost a script call per block rather than per request, and give back what they
leave unused; a job's streams hold one concurrency slot each until the job releases them."""
import threading
import time

import redis

from docora_admin.services.control.app_limits import AppLimiter
from tests.conftest import TEST_REDIS_URL

HOLD_S = 10


def script_calls():
    stats = redis.Redis.from_url(TEST_REDIS_URL).info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
               for name in ("evalsha", "eval"))


def run_jobs(app_id, rate, concurrency, jobs, threads, turns, work_s=0.0):
    """`jobs` limiters of one app at once, each sending `turns` requests on each of `threads`
    threads; returns the time of every request and the most jobs holding slots at once."""
    sent, lock = [], threading.Lock()
    holding, most = [0], [0]

    def job():
        limiter = AppLimiter(app_id, rate, concurrency, HOLD_S)
        counted = False

        def stream():
            nonlocal counted
            for _ in range(turns):
                limiter.turn()
                with lock:
                    sent.append(time.monotonic())
                    if not counted:
                        counted = True
                        holding[0] += 1
                        most[0] = max(most[0], holding[0])
                time.sleep(work_s)

        workers = [threading.Thread(target=stream) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        with lock:
            holding[0] -= counted
        limiter.release()

    runners = [threading.Thread(target=job) for _ in range(jobs)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    return sorted(sent), most[0]


def busiest(times, window):
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


def test_blocks_of_turns_keep_the_rate_across_jobs_and_threads(app):
    rate, requests = 200, 2 * 3 * 30
    calls = script_calls()
    times, _ = run_jobs("app_rate", rate, 0, jobs=2, threads=3, turns=30)
    assert len(times) == requests
    # One request per turn: a 100 ms window holds at most its 20 turns (+1, and one for the
    # sleep's jitter), and the whole run takes at least a turn per request.
    assert busiest(times, 0.1) <= rate * 0.1 + 2
    assert times[-1] - times[0] >= (requests - 1) / rate * 0.95
    # Blocks of up to 10 turns (50 ms at 200/s): far fewer script calls than requests.
    assert script_calls() - calls <= requests / 3


def next_turn_us(app_id):
    return int(redis.Redis.from_url(TEST_REDIS_URL).get(f"docora:app:{{{app_id}}}:next"))


def redis_now_us():
    seconds, micros = redis.Redis.from_url(TEST_REDIS_URL).time()
    return seconds * 1_000_000 + micros


def test_a_block_left_unused_is_given_back(app):
    first = AppLimiter("app_give_back", 100, 0, HOLD_S)
    first.turn()  # reserves a block of 5 turns (50 ms) and uses one
    [stream] = first._streams.values()
    assert next_turn_us("app_give_back") == stream.turn_us + 5 * 10_000
    first.release()
    # The app's next turn is the one after the used turn, not after the whole block.
    assert next_turn_us("app_give_back") == stream.turn_us + 10_000


def test_a_slow_stream_reserves_few_turns_ahead(app):
    # Requests slower than the rate (20 ms each at 200/s, a turn being 5 ms): after its first
    # block (10 turns), the stream asks for about as many turns as it sent, so it never holds
    # much of the app's time ahead of the others (a full block would be 50 ms).
    limiter = AppLimiter("app_slow", 200, 0, HOLD_S)
    ahead = []
    for n in range(12):
        limiter.turn()
        if n >= 4:  # past the first block
            ahead.append(next_turn_us("app_slow") - redis_now_us())
        time.sleep(0.02)
    limiter.release()
    assert max(ahead) <= 30_000


def test_each_stream_holds_one_slot_until_its_job_releases_it(app):
    times, most = run_jobs("app_slots", 0, 3, jobs=6, threads=1, turns=5, work_s=0.01)
    assert len(times) == 30  # every job got a slot in time (MAX_WAIT_S) and sent everything
    assert most <= 3
    holders = redis.Redis.from_url(TEST_REDIS_URL).zcard("docora:app:{app_slots}:inflight")
    assert holders == 0  # all released


def test_no_rate_and_a_fresh_slot_cost_one_call_per_stream(app):
    calls = script_calls()
    times, _ = run_jobs("app_free", 0, 8, jobs=1, threads=2, turns=50)
    assert len(times) == 100
    assert script_calls() - calls <= 3  # a slot per stream, then the release


def test_a_reply_that_comes_late_does_not_push_a_block_into_the_next(app, monkeypatch):
    """A stream maps its block's turns (Redis's clock) onto its own clock when the script's
    reply arrives: a reply that took 30 ms (a descheduled thread, a loaded machine) must not
    move the block's turns 30 ms later, into the block reserved after it."""
    from docora_admin.services.control import app_limits

    real, calls = app_limits._script, [0]

    def slow_every_third(client, source):
        script = real(client, source)

        def call(**kwargs):
            answer = script(**kwargs)
            calls[0] += 1
            if calls[0] % 3 == 0:
                time.sleep(0.03)
            return answer
        return call

    monkeypatch.setattr(app_limits, "_script", slow_every_third)
    rate, requests = 200, 2 * 3 * 30
    times, _ = run_jobs("app_late", rate, 0, jobs=2, threads=3, turns=30)
    assert len(times) == requests
    assert busiest(times, 0.1) <= rate * 0.1 + 2
