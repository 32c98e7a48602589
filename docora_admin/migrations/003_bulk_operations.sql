-- Durable record of every bulk retry. The frozen target set lives in bulk_operation_targets with
-- its own ordinal, so a resumed operation continues after the last finished chunk and never
-- retries a row twice.
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
    cursor integer NOT NULL DEFAULT 0,
    status varchar(16) NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'cancelling', 'completed', 'cancelled', 'failed')),
    cancel_requested boolean NOT NULL DEFAULT false,
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

CREATE TABLE IF NOT EXISTS bulk_operation_targets (
    operation_id varchar(32) NOT NULL REFERENCES bulk_operations (id) ON DELETE CASCADE,
    ordinal integer NOT NULL,
    app_id varchar(50) NOT NULL,
    repository_id varchar(50) NOT NULL,
    PRIMARY KEY (operation_id, ordinal)
);
