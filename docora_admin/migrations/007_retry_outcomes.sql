-- Retry outcomes: which job may work on a link, what started its current delivery episode, and a
-- log of every delivery attempt. One model serves two needs: the numbers on screen (where did
-- each link a retry touched end?) and recovery (a link whose job was lost is found and queued
-- again, and a stale duplicate job can never act).

-- job_generation: bumped every time a job is queued for the link (a retry, a bulk chunk, the
-- scheduler, a backoff, a requeue of a lost job). A job carries the generation it was queued
-- for and may claim the link only while it is still the current one: a job is at-least-once in
-- the queue and at-most-once in effect.
-- retry_cause / retry_operation_id: what started the link's current (or last) delivery episode:
-- 'retry' (one row), 'bulk' (with the bulk operation), 'scheduler' (a new link or a re-scan).
-- Every attempt of the episode is logged with it, and a bulk operation's outcome is counted
-- from the episodes it started.
ALTER TABLE app_repositories
    ADD COLUMN IF NOT EXISTS job_generation integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS retry_cause varchar(16),
    ADD COLUMN IF NOT EXISTS retry_operation_id varchar(32);

-- next_attempt_at now means "when the link's next step is due": for pending_snapshot the time its
-- queued attempt may start (a backoff), for scanning the end of the running attempt's lease
-- (renewed while the job runs). One partial index over both statuses serves the in-progress list
-- (links queued, between attempts or delivering, in next-attempt order) and the sweeper that finds
-- lost jobs and expired leases. It replaces the pending-only index of migration 004 and the
-- scanning index (a stuck scan is now found by its lease, not its age): a reset still inserts into
-- one index here, not two.
CREATE INDEX IF NOT EXISTS app_repositories_in_progress_idx
    ON app_repositories (next_attempt_at, id)
    WHERE status IN ('pending_snapshot', 'scanning');
DROP INDEX IF EXISTS app_repositories_pending_due_idx;
DROP INDEX IF EXISTS app_repositories_scanning_idx;

-- Every snapshot attempt, written in the same transaction as the link's status change it ends
-- in, so the log and the status never disagree. No foreign key: the history of a deleted link
-- stays until it is pruned (ATTEMPT_LOG_RETENTION_DAYS).
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id uuid NOT NULL,
    app_id varchar(50) NOT NULL,
    repository_id varchar(50) NOT NULL,
    attempt integer NOT NULL,          -- 1..MAX_RETRY_ATTEMPTS within the episode
    cause varchar(16) NOT NULL,        -- retry | bulk | scheduler
    operation_id varchar(32),          -- the bulk operation of the episode, if any
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    -- delivered: the link is synced; failed: counted toward the limit; interrupted: the attempt
    -- was cut short by an outage or a dead worker and is not counted.
    outcome varchar(16) NOT NULL CHECK (outcome IN ('delivered', 'failed', 'interrupted')),
    link_status varchar(32) NOT NULL,  -- where the link ended: synced, pending_snapshot, failed
    error text,
    http_status integer,
    files_sent integer NOT NULL DEFAULT 0,
    bytes_sent bigint NOT NULL DEFAULT 0
);
-- The link page: its attempts, newest first.
CREATE INDEX IF NOT EXISTS delivery_attempts_link_idx ON delivery_attempts (link_id, id DESC);
-- A bulk operation's outcome: the episodes it started that ended (delivered or gave up), counted
-- and listed (the links that failed again) without touching the operation's row per job.
CREATE INDEX IF NOT EXISTS delivery_attempts_operation_end_idx
    ON delivery_attempts (operation_id, link_status, id)
    WHERE operation_id IS NOT NULL AND link_status IN ('synced', 'failed');
-- Retention pruning walks the log in time order; rows arrive in that order, so BRIN is enough.
CREATE INDEX IF NOT EXISTS delivery_attempts_finished_brin
    ON delivery_attempts USING brin (finished_at);

-- Bulk operations gain selections (a filter or a list of links) and a delivery outcome.
ALTER TABLE bulk_operations ALTER COLUMN scope TYPE varchar(16);
ALTER TABLE bulk_operations DROP CONSTRAINT IF EXISTS bulk_operations_scope_check;
ALTER TABLE bulk_operations DROP CONSTRAINT IF EXISTS bulk_operations_check;
ALTER TABLE bulk_operations DROP CONSTRAINT IF EXISTS bulk_operations_scope_valid;
ALTER TABLE bulk_operations DROP CONSTRAINT IF EXISTS bulk_operations_scope_app;
ALTER TABLE bulk_operations
    ADD CONSTRAINT bulk_operations_scope_valid
        CHECK (scope IN ('app', 'all', 'selection')),
    ADD CONSTRAINT bulk_operations_scope_app
        CHECK ((scope <> 'app' OR app_id IS NOT NULL) AND (scope <> 'all' OR app_id IS NULL));
ALTER TABLE bulk_operations
    -- A selection's filter as given: search, failed_since, failed_until, app_id, links (count),
    -- failed_again_of (an operation id). NULL for the seed's all/app scopes.
    ADD COLUMN IF NOT EXISTS filter jsonb,
    -- Links the operation reset that can no longer end (deleted meanwhile).
    ADD COLUMN IF NOT EXISTS gone integer NOT NULL DEFAULT 0,
    -- When the reset links' outcome last moved, and when none was left in progress.
    ADD COLUMN IF NOT EXISTS outcome_changed_at timestamptz,
    ADD COLUMN IF NOT EXISTS settled_at timestamptz;
COMMENT ON COLUMN bulk_operations.delivered IS
    'links reset by this operation whose delivery episode ended synced';
COMMENT ON COLUMN bulk_operations.delivery_failed IS
    'links reset by this operation that failed again up to the attempt limit';
-- Operations that ended before this migration have no episodes to follow: they are settled as
-- they stand (their delivered / delivery_failed were reported per attempt, not per link), instead
-- of being recounted from an attempt log they never wrote and reported as "gone".
UPDATE bulk_operations SET settled_at = coalesce(finished_at, now())
WHERE settled_at IS NULL AND status NOT IN ('running', 'cancelling');
CREATE INDEX IF NOT EXISTS bulk_operations_unsettled_idx
    ON bulk_operations (created_at) WHERE settled_at IS NULL;

-- The frozen target list of a selection given as links (at most 1,000) or as "the links that
-- failed again in operation X"; walked in link id order by the bulk task.
CREATE TABLE IF NOT EXISTS bulk_operation_targets (
    operation_id varchar(32) NOT NULL REFERENCES bulk_operations (id) ON DELETE CASCADE,
    link_id uuid NOT NULL,
    PRIMARY KEY (operation_id, link_id)
);

-- Links created before this migration that wait for a job get a due time, so the sweeper
-- (which reads the in-progress index by next_attempt_at) sees them.
UPDATE app_repositories SET next_attempt_at = now()
WHERE status = 'pending_snapshot' AND next_attempt_at IS NULL;
