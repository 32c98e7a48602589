"""The job queue and its housekeeping: pushing snapshot jobs, the sweeper that finds lost
ones and due rescans, and the consumer's watchdog thread.

Modules and their public functions:

job_queue: Queueing snapshot jobs, one at a time or thousands at once, and reading where the
    queue is.
    apps_in_turn, push_snapshot_jobs, schedule_snapshot, oldest_waiting_stamp,
    queue_sync_failed_notices, queue_bulk_run, queue_in_batches

sweeper: Every link that should have a job gets one: the periodic pass that makes "nothing
    acknowledged is lost" true whatever process or service died when.
    requeue_lost_jobs, release_expired_leases, queue_rescans, sweep

watchdog: The consumer's housekeeping thread: what must happen within seconds, not once a
    minute.
    start, tick
"""
