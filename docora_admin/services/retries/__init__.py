"""Retries and re-syncs: one link, or a bulk operation (all, one app, a selection) with
its live progress, pause and cancel, and its outcome once the deliveries have ended.

Modules and their public functions:

bulk_progress: Live counters of a bulk retry in the Redis hash docora:bulk:{operation_id},
    with a copy of its row: all a poll reads.
    generate_operation_id, is_valid_operation_id, create_progress, increment_progress,
    increment_deliveries, cancel_progress, is_cancelled, set_status, mark_failed, write_outcome,
    write_record, read_live, get_progress, write_from_record

dismissal: Dismissing failed links that will never succeed (one link, or every link of a
    cause), audited and reversible; bulk retries never target a dismissed link.
    parse, dismiss, undismiss

bulk_runner: Working through a bulk retry's frozen targets, chunk by chunk, in a Huey task.
    run_bulk_retry, run_one_chunk, Chunks, resume_stalled

operations: Reading bulk operations: live progress, history, one operation with its outcome.
    progress, operation_json, active_operations, running_for_scope, recent_operations,
    failed_again, count_failed_again_still_failed

outcomes: Where the links a bulk operation reset ended: delivered, failed again, still in
    progress, and when the operation is settled (none left in progress).
    in_progress, refresh_held, settle_all, settle

resync: Re-sync: deliver everything again.
    resync_link, resync_counts, start_app_resync

retry: Retrying failed links: one at a time, or in bulk (all, one app, or a selection) through a
    Huey task (services/retries/bulk_runner.py works through it).
    retry_one, retry_now, estimate, start_bulk_retry, start_selection, start_operation, cancel,
    pause, resume

selection: What POST /admin/api/retry/selection and GET /admin/api/retry/estimate accept: the
    list's filter (app_id, search, failed_since, failed_until, cause), or `links` (up to 1,000 {app_id,
    repository_id}), or `failed_again_of` (an operation id: its links that failed again).
    parse
"""
