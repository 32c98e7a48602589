-- docora:no-transaction
-- A reset (failed → pending_snapshot) is never a HOT update: its status changes, so every index
-- whose predicate the new row meets gets an entry, and migration 008's in-progress indexes made
-- a retry-all of 100k 1.5–1.8x slower. Two of them lose `id` from their key. A chunk's links all
-- get the same updated_at and next_attempt_at (the statement's now()), so without the random
-- uuid the new entries of one chunk (of one app) are equal keys: B-tree deduplication packs them
-- into posting lists at the end of the index instead of scattering them over hundreds of pages,
-- each split and, after a checkpoint, written whole to the WAL. One UPDATE of 100k failed links
-- among 1M: 2.74 s → 2.33 s (bench/bulk_retry.py's data; 1.5 s without 008's indexes).
--
-- The range filter on updated_at never needed the id. The app filter still pages in
-- (next_attempt_at, id) order: an incremental sort orders the few links sharing a next attempt
-- by id (bench/in_progress_list.py: app filter and app-name search unchanged).
--
-- Built concurrently (writes go on meanwhile), each before the index it replaces is dropped; an
-- interrupted build leaves an invalid index, dropped and built again on the next run.
DROP INDEX CONCURRENTLY IF EXISTS app_repositories_in_progress_changed_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS app_repositories_in_progress_changed_idx
    ON app_repositories (updated_at) WHERE status IN ('pending_snapshot', 'scanning');
DROP INDEX CONCURRENTLY IF EXISTS app_repositories_in_progress_updated_idx;
DROP INDEX CONCURRENTLY IF EXISTS app_repositories_in_progress_app_due_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS app_repositories_in_progress_app_due_idx
    ON app_repositories (app_id, next_attempt_at) WHERE status IN ('pending_snapshot', 'scanning');
DROP INDEX CONCURRENTLY IF EXISTS app_repositories_in_progress_app_idx;
