-- The per-repository git circuit (DOCORA_CONTRACT.md §1, "sync_failed"): git failures (clone,
-- fetch, authentication, repository gone) are counted per repository across all its links in
-- repositories.consecutive_failures (migration 001); at REPOSITORY_FAILURE_THRESHOLD in a row
-- the circuit opens until circuit_open_until (REPOSITORY_COOLDOWN_MINUTES later, PostgreSQL's
-- clock) and every linked app is sent one signed sync_failed (services/repository_circuit.py).
ALTER TABLE repositories
    -- When the current circuit episode opened; NULL while closed. Once circuit_open_until has
    -- passed with this still set, the circuit is half-open: the next job is its probe.
    ADD COLUMN IF NOT EXISTS circuit_opened_at timestamptz,
    -- How many times the circuit has opened: names an episode (one sync_failed per app each).
    ADD COLUMN IF NOT EXISTS circuit_episode integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_git_error text,
    ADD COLUMN IF NOT EXISTS last_git_failure_at timestamptz;
-- The overview's count and /metrics: repositories whose circuit is (or was) open.
CREATE INDEX IF NOT EXISTS repositories_circuit_idx ON repositories (circuit_open_until)
    WHERE circuit_opened_at IS NOT NULL;

-- The outbox of sync_failed requests: one row per (repository, app, circuit episode), inserted
-- in the transaction that records the failed attempt opening the circuit, so a worker that dies
-- right after the commit still has it sent (the watchdog queues the sender for any row due).
-- A sender claims a row by moving next_attempt_at a lease ahead (FOR UPDATE SKIP LOCKED): two
-- consumers never send the same row at once; one that dies mid-send leaves it due at the lease's
-- end (at-least-once only across a crash between the app's answer and the commit).
CREATE TABLE IF NOT EXISTS repository_sync_failed_notices (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id varchar(50) NOT NULL REFERENCES repositories (repository_id) ON DELETE CASCADE,
    app_id varchar(50) NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    link_id uuid NOT NULL,
    episode integer NOT NULL,
    -- The body's facts as they were when the circuit opened (the body is built when sent, with
    -- the contract's key order and a fresh timestamp).
    error text NOT NULL,
    consecutive_failures integer NOT NULL,
    threshold integer NOT NULL,
    cooldown_until timestamptz NOT NULL,
    retry_count integer NOT NULL,
    status varchar(16) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    sends integer NOT NULL DEFAULT 0,  -- requests tried (counted when claimed)
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    http_status integer,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repository_id, app_id, episode)
);
CREATE INDEX IF NOT EXISTS repository_sync_failed_notices_due_idx
    ON repository_sync_failed_notices (next_attempt_at) WHERE status = 'pending';

-- Each link's attempt log shows the sync_failed sent to its app (sync_failed) or given up on
-- (notice_failed). Such rows carry no operation_id: a bulk operation's outcome is not theirs.
ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_outcome_check;
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_outcome_check
    CHECK (outcome IN ('delivered', 'failed', 'interrupted', 'deferred', 'sync_failed',
                       'notice_failed'));
