-- A bulk operation whose worker died stops beating (heartbeat_at); the watchdog resumes it
-- (repositories/bulk_operations.claim_stalled). What the console says about it: the last stall's
-- start (its last heartbeat then), when it was resumed, and how many times.
ALTER TABLE bulk_operations ADD COLUMN IF NOT EXISTS stalled_at timestamptz;
ALTER TABLE bulk_operations ADD COLUMN IF NOT EXISTS resumed_at timestamptz;
ALTER TABLE bulk_operations ADD COLUMN IF NOT EXISTS resumes integer NOT NULL DEFAULT 0;
