-- Indexes for the failed-notifications list at a million links (bench/failed_list.py measures
-- it; see the queries in repositories/failed_links.py). Most are partial on status = 'failed':
-- they hold only the ~10% of rows the list reads; rows in other statuses never enter them.
--
-- Search uses the pg_trgm extension when the server has it (PostgreSQL's contrib; "trusted"
-- since PostgreSQL 13, so a database owner can create it without being superuser). A server
-- without contrib (the embedded pgserver build the run command can fall back to) still
-- migrates: search then reads every failed row, slower but with the same results.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        -- Search: error text contains the term.
        CREATE INDEX IF NOT EXISTS app_repositories_failed_error_trgm_idx
            ON app_repositories USING gin (last_error gin_trgm_ops) WHERE status = 'failed';
        -- Search: repository "owner/name" contains the term (the query uses this expression).
        CREATE INDEX IF NOT EXISTS repositories_full_name_trgm_idx
            ON repositories USING gin ((owner || '/' || name) gin_trgm_ops);
    ELSE
        RAISE NOTICE 'pg_trgm is not available: search runs without trigram indexes';
    END IF;
END
$$;
-- Search hits on repositories → their failed links; sort by repository walks repositories in
-- (owner, name) order and picks up each one's failed links.
CREATE INDEX IF NOT EXISTS app_repositories_failed_repository_idx
    ON app_repositories (repository_id) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS repositories_owner_name_idx ON repositories (owner, name);
-- Sort by app name walks apps in name order and each app's failed links in id order.
CREATE INDEX IF NOT EXISTS apps_app_name_idx ON apps (app_name);
CREATE INDEX IF NOT EXISTS app_repositories_failed_app_idx
    ON app_repositories (app_id, id) WHERE status = 'failed';
-- Failed links per app for the app filter drop-down (on every view of the list), counted
-- index-only: B-tree deduplication stores each app_id once per leaf page, so 100,000 failed
-- links take 0.7 MB here against 9 MB in the (app_id, id) index, and counting halves.
CREATE INDEX IF NOT EXISTS app_repositories_failed_app_count_idx
    ON app_repositories (app_id) WHERE status = 'failed';
-- Sort by retry count: walked in (retry_count, id) order, the order the list asks for.
CREATE INDEX IF NOT EXISTS app_repositories_failed_retry_idx
    ON app_repositories (retry_count, id) WHERE status = 'failed';
