-- The (status, updated_at, id) and (app_id, status, updated_at, id) indexes of migration 002 are
-- only ever read with status = 'failed' (the failed list's newest-first pages, a bulk retry's
-- oldest-first cursor). As full indexes, every status change of every link inserted a new entry
-- into both: resetting 100,000 failed links took 4.5–5.5 s, half of it in these two B-trees.
-- Partial on failed, a link leaving `failed` adds nothing to them and the same UPDATE takes 2.1 s
-- (one UPDATE timed by hand on bench/bulk_retry.py's seeded database); the queries keep their
-- index-only scans in the same order (bench/failed_list.py).
CREATE INDEX IF NOT EXISTS app_repositories_failed_updated_idx
    ON app_repositories (updated_at, id) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS app_repositories_failed_app_updated_idx
    ON app_repositories (app_id, updated_at, id) WHERE status = 'failed';
DROP INDEX IF EXISTS app_repositories_status_updated_idx;
DROP INDEX IF EXISTS app_repositories_app_status_updated_idx;
