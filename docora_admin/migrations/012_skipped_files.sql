-- Files an attempt could not send (a name that is not UTF-8, a file that cannot be read): the
-- rest of the repository is delivered, and the attempt says which were set aside and why.
ALTER TABLE delivery_attempts
    -- How many files were set aside (all of them, however many).
    ADD COLUMN IF NOT EXISTS skipped_count integer NOT NULL DEFAULT 0,
    -- The first of them, [{path, reason}] (bounded: see repositories/snapshot_links.py).
    ADD COLUMN IF NOT EXISTS skipped jsonb;
