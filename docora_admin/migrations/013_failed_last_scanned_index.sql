-- GET /admin/api/notifications/failed orders by last_scanned_at by default, as the original
-- Docora admin API does (DOCORA_CONTRACT.md §2): partial on failed like migration 006's
-- updated_at indexes, so a link leaving `failed` adds nothing to it. A synced link's new
-- last_scanned_at changes its status too, which other indexes already hold: no HOT update is lost.
CREATE INDEX IF NOT EXISTS app_repositories_failed_scanned_idx
    ON app_repositories (last_scanned_at, id) WHERE status = 'failed';
