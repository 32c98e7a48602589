-- Every change of a bulk operation's row moves its revision on, so that the copy of the row in
-- its live Redis hash (services/retries/bulk_progress.write_record) is only ever replaced by a
-- newer one, whichever process writes last: a poll reads that copy and never PostgreSQL.
ALTER TABLE bulk_operations ADD COLUMN IF NOT EXISTS revision bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION bulk_operations_next_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := OLD.revision + 1;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS bulk_operations_revision ON bulk_operations;
CREATE TRIGGER bulk_operations_revision BEFORE UPDATE ON bulk_operations
    FOR EACH ROW EXECUTE FUNCTION bulk_operations_next_revision();
