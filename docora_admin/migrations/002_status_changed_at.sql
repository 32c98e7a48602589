-- updated_at on app_repositories records when the status last changed: the failed list shows
-- "failed since" from it. A trigger keeps it true even for writers that do not know the column
-- (the Docora service itself).
ALTER TABLE app_repositories ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

CREATE OR REPLACE FUNCTION app_repositories_touch_status() RETURNS trigger AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS app_repositories_touch_status ON app_repositories;
-- The WHEN clause keeps the function out of updates that set updated_at themselves.
CREATE TRIGGER app_repositories_touch_status
    BEFORE UPDATE OF status ON app_repositories
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION app_repositories_touch_status();

-- (Migration 006 replaces both with partial indexes on failed links.)
-- The failed list reads newest-first pages of one status, optionally for one app, and bulk
-- retries walk the same order oldest-first with a keyset cursor: one index serves both
-- directions.
CREATE INDEX IF NOT EXISTS app_repositories_status_updated_idx
    ON app_repositories (status, updated_at, id);
CREATE INDEX IF NOT EXISTS app_repositories_app_status_updated_idx
    ON app_repositories (app_id, status, updated_at, id);
