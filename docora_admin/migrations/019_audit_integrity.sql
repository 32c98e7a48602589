-- The audit trail the app itself cannot rewrite (issue 24, M3).
--
-- 1. A hash chain: each event carries the hash of the one before it (prev_hash) and its own
--    (row_hash = sha256(prev_hash || its fields, occurred_at included)), set by a BEFORE INSERT
--    trigger; inserts take a transaction-level advisory lock, so the chain is one line
--    whatever runs at once. `flask --app app audit verify` walks it: an edited row no
--    longer matches its hash, a deleted one leaves its successor pointing at nothing, a row
--    inserted around the trigger breaks a link.
-- 2. Pruning only through audit_prune(), a SECURITY DEFINER function (it runs as this owner)
--    that deletes only events older than the retention `migrate` stored in audit_retention,
--    which the app's role cannot change. The app's role (`migrate` creates it, db_roles.py) has
--    SELECT and INSERT on audit_events and nothing else: no UPDATE, DELETE, TRUNCATE or DDL.
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS prev_hash bytea;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS row_hash bytea;

CREATE OR REPLACE FUNCTION audit_event_hash(prev bytea, e audit_events) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    -- Each field quoted (NULL as the word): no two different rows give the same text.
    SELECT sha256(coalesce(prev, ''::bytea) || convert_to(concat_ws(',',
        e.id::text,
        quote_literal(to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')),
        quote_nullable(e.actor), quote_nullable(e.source_address), quote_literal(e.action),
        quote_nullable(e.target), quote_literal(e.details::text)), 'UTF8'))
$$;

CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('docora_admin.audit_chain'));
    NEW.occurred_at := coalesce(NEW.occurred_at, clock_timestamp());
    SELECT row_hash INTO last_hash FROM audit_events ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := last_hash;
    NEW.row_hash := audit_event_hash(last_hash, NEW);
    RETURN NEW;
END
$$;

-- The events written before the chain: chained now, oldest first (the append-only trigger is
-- the owner's to lift for this one statement).
ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;
DO $$
DECLARE
    e audit_events;
    last_hash bytea;
BEGIN
    FOR e IN SELECT * FROM audit_events WHERE row_hash IS NULL ORDER BY id LOOP
        UPDATE audit_events SET prev_hash = last_hash, row_hash = audit_event_hash(last_hash, e)
        WHERE id = e.id RETURNING row_hash INTO last_hash;
    END LOOP;
END
$$;
ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;

DROP TRIGGER IF EXISTS audit_events_chain ON audit_events;
CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_chain();

CREATE TABLE IF NOT EXISTS audit_retention (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    days integer NOT NULL CHECK (days >= 1)
);

CREATE OR REPLACE FUNCTION audit_prune(max_rows integer DEFAULT 10000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    keep integer;
    deleted integer;
BEGIN
    SELECT days INTO keep FROM audit_retention;
    IF keep IS NULL THEN
        RAISE EXCEPTION 'no audit retention stored: run migrate' USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM set_config('docora.audit_pruning', 'on', true);
    DELETE FROM audit_events WHERE id IN (
        SELECT id FROM audit_events WHERE occurred_at < now() - make_interval(days => keep)
        ORDER BY id LIMIT greatest(1, least(max_rows, 100000)));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('docora.audit_pruning', '', true);
    RETURN deleted;
END
$$;
REVOKE ALL ON FUNCTION audit_prune(integer) FROM PUBLIC;
