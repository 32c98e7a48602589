-- Delivery control: hold an app's deliveries (paused by an operator, circuit open after repeated
-- failures, or deferred because the app answered 429/503 with Retry-After), per-app limits, bulk
-- operations that pause, and re-syncs.
--
-- A held app's links stay pending_snapshot in this database while their jobs are dropped at the
-- claim: nothing is attempted or counted, nothing is lost across restarts, and releasing the app
-- queues its due links again (services/delivery_control.py).
CREATE TABLE IF NOT EXISTS app_delivery_control (
    app_id varchar(50) PRIMARY KEY REFERENCES apps (app_id) ON DELETE CASCADE,
    paused_at timestamptz,
    paused_by varchar(255),
    -- Failed attempts in a row that the app answered badly (or not at all); the first delivered
    -- attempt resets it.
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_error text,
    last_failure_at timestamptz,
    -- Open circuit: jobs are deferred, one probe goes out when probe_at comes; probe_failures
    -- doubles the interval up to a cap.
    circuit_opened_at timestamptz,
    probe_at timestamptz,
    probe_failures integer NOT NULL DEFAULT 0,
    -- The app asked us to wait (429 or 503 with Retry-After) until then.
    deferred_until timestamptz,
    -- Per-app overrides of APP_RATE_PER_SECOND and APP_MAX_CONCURRENCY (NULL: the setting).
    rate_per_second real CHECK (rate_per_second IS NULL OR rate_per_second > 0),
    max_concurrency integer CHECK (max_concurrency IS NULL OR max_concurrency > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- An attempt given back because the app asked to wait is logged, and not counted.
ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_outcome_check;
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_outcome_check
    CHECK (outcome IN ('delivered', 'failed', 'interrupted', 'deferred'));

-- Bulk operations that pause (keeping their cursor), and re-syncs (kind 'resync': every link of an
-- app delivered again from scratch).
ALTER TABLE bulk_operations DROP CONSTRAINT IF EXISTS bulk_operations_status_check;
ALTER TABLE bulk_operations ADD CONSTRAINT bulk_operations_status_check
    CHECK (status IN ('running', 'cancelling', 'paused', 'completed', 'cancelled', 'failed'));
ALTER TABLE bulk_operations
    ADD COLUMN IF NOT EXISTS kind varchar(16) NOT NULL DEFAULT 'retry'
        CHECK (kind IN ('retry', 'resync')),
    ADD COLUMN IF NOT EXISTS paused_at timestamptz;
-- A paused operation still holds its scope: a second retry-all beside a paused one would reset
-- the same links.
DROP INDEX IF EXISTS bulk_operations_one_running_per_scope;
CREATE UNIQUE INDEX IF NOT EXISTS bulk_operations_one_active_per_scope
    ON bulk_operations ((coalesce(app_id, '*')))
    WHERE status IN ('running', 'cancelling', 'paused');
