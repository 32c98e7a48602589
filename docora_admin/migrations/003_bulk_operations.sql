-- Durable record of every bulk retry.
--
-- The target set is frozen without copying it: the targets are the links in scope that were
-- `failed` with updated_at <= frozen_at. A retried link leaves `failed` (and its updated_at moves
-- past frozen_at), so it can never be picked twice; the keyset cursor (cursor_updated_at,
-- cursor_link_id) lets a resumed operation continue after its last committed chunk. This keeps
-- the request O(count) instead of O(copy), which matters at a million failed rows.
CREATE TABLE IF NOT EXISTS bulk_operations (
    id varchar(32) PRIMARY KEY,
    scope varchar(8) NOT NULL CHECK (scope IN ('app', 'all')),
    app_id varchar(50),
    requested_by varchar(255) NOT NULL,
    total integer NOT NULL,
    completed integer NOT NULL DEFAULT 0,
    succeeded integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    skipped integer NOT NULL DEFAULT 0,
    delivered integer NOT NULL DEFAULT 0,
    delivery_failed integer NOT NULL DEFAULT 0,
    frozen_at timestamptz NOT NULL,
    cursor_updated_at timestamptz,
    cursor_link_id uuid,
    chunk_size integer NOT NULL,
    status varchar(16) NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'cancelling', 'completed', 'cancelled', 'failed')),
    cancel_requested boolean NOT NULL DEFAULT false,
    error text,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CHECK ((scope = 'app') = (app_id IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS bulk_operations_created_idx ON bulk_operations (created_at DESC);
-- At most one running operation per scope: the database, not a process, decides the 409.
CREATE UNIQUE INDEX IF NOT EXISTS bulk_operations_one_running_per_scope
    ON bulk_operations ((coalesce(app_id, '*')))
    WHERE status IN ('running', 'cancelling');
