-- Held is an outcome of its own: the links a bulk operation reset that no worker will touch until
-- something releases them (their app paused, its circuit open, the app asked to wait, their
-- repository's git circuit open). Recounted with the rest of the outcome (services/retries/
-- outcomes.py): {"links": n, "by_reason": {reason: n}, "apps": [{app_id, app_name, reason,
-- links, until}], "apps_count": n}; NULL before the first recount and once settled.
ALTER TABLE bulk_operations ADD COLUMN IF NOT EXISTS held jsonb;
