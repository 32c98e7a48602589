-- Scheduling of snapshot jobs. next_attempt_at is when the scheduler may (re-)queue a
-- pending_snapshot link: after a failed attempt it grows (backoff); when a job is queued it is
-- pushed forward, so the scheduler only re-queues a job that got lost.
ALTER TABLE app_repositories ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz;

CREATE INDEX IF NOT EXISTS app_repositories_pending_due_idx
    ON app_repositories (next_attempt_at NULLS FIRST) WHERE status = 'pending_snapshot';
CREATE INDEX IF NOT EXISTS app_repositories_synced_scan_idx
    ON app_repositories (last_scanned_at NULLS FIRST) WHERE status = 'synced';
CREATE INDEX IF NOT EXISTS app_repositories_scanning_idx
    ON app_repositories (updated_at) WHERE status = 'scanning';
