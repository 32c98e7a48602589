"""Delivery control: when an app is delivered to (pause, its circuit, Retry-After, its rate
and concurrency limits) and when a repository's git work waits (its circuit and sync_failed).

Modules and their public functions:

app_limits: Per-app request rate and concurrency, shared by every worker thread and consumer
    process (one Lua script in Redis, so checking and taking is one atomic step).
    RateLimited, AppLimiter

delivery_control: Holding and releasing an app's deliveries: an operator's pause, the circuit
    breaker, and the app's own "wait" (429/503 with Retry-After); and the app's limits.
    Admission, admit, admission, record_failed, record_deferral, retry_after_seconds, release,
    tick, pause_app, resume_app, close_circuit, set_limits, state_of, states_of, held_apps,
    describe

repository_circuit: The per-repository git circuit (DOCORA_CONTRACT.md §1, "sync_failed").
    Gate, gate, record_git_failure, record_success, release, close, describe, existing_state,
    circuit_json, state, states_of, tripped

sync_failed: Sending the sync_failed outbox: one signed POST {base_url}/sync_failed per
    (repository, app, circuit episode), written when a repository's git circuit opened
    (services/repository_circuit).
    payload, send_due, prune, tick, queue_after_commit
"""
