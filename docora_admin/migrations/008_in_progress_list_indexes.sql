-- The in-progress view of the notifications list at a million links, with its filters and
-- sorts (bench/in_progress_list.py measures it): without these, a search, an app filter, a
-- range or a sort other than next attempt read every in-progress row (100,000 during a large
-- retry: 0.5–0.8 s p95). Partial on in-progress links, like the failed list's indexes are on
-- failed ones. Each costs a reset one more index entry: a retry-all of 100k takes 0.6–1.0 s
-- longer (bench/bulk_retry.py, 2.5 s → 3.2–3.6 s on a 2-core machine).
CREATE INDEX IF NOT EXISTS app_repositories_in_progress_app_idx
    ON app_repositories (app_id, next_attempt_at, id)
    WHERE status IN ('pending_snapshot', 'scanning');
CREATE INDEX IF NOT EXISTS app_repositories_in_progress_retry_idx
    ON app_repositories (retry_count, id) WHERE status IN ('pending_snapshot', 'scanning');
CREATE INDEX IF NOT EXISTS app_repositories_in_progress_repository_idx
    ON app_repositories (repository_id) WHERE status IN ('pending_snapshot', 'scanning');
CREATE INDEX IF NOT EXISTS app_repositories_in_progress_updated_idx
    ON app_repositories (updated_at, id) WHERE status IN ('pending_snapshot', 'scanning');
-- Error text of links between attempts (a reset clears last_error, so a retry adds nothing
-- here; nor does a claim of a link without one).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX IF NOT EXISTS app_repositories_in_progress_error_trgm_idx
            ON app_repositories USING gin (last_error gin_trgm_ops)
            WHERE status IN ('pending_snapshot', 'scanning') AND last_error IS NOT NULL;
    END IF;
END
$$;
