-- Accounts (a team of admins with roles) and the audit trail of who did what.

-- One row per person. The account named by ADMIN_USERNAME is kept in step with the environment
-- at start-up (from_environment); the others are managed with `flask users …` and the Accounts
-- page. session_epoch is part of every session's user id: bumping it (disable, new password,
-- new role) ends every session of the account at once, even one a request in flight would save
-- back to Redis after its key was deleted.
CREATE TABLE IF NOT EXISTS accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username varchar(64) NOT NULL,
    role varchar(16) NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text NOT NULL,
    -- The ADMIN_PASSWORD_HASH last applied from the environment, so a restart with the same
    -- value changes nothing (the stored hash may have been upgraded to argon2 since).
    env_password_hash text,
    from_environment boolean NOT NULL DEFAULT false,
    session_epoch integer NOT NULL DEFAULT 1,
    disabled_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Usernames are unique whatever their case: "Admin" and "admin" are one person.
CREATE UNIQUE INDEX IF NOT EXISTS accounts_username_key ON accounts (lower(username));
CREATE UNIQUE INDEX IF NOT EXISTS accounts_one_from_environment
    ON accounts (from_environment) WHERE from_environment;

-- Append-only: the application inserts; only retention pruning deletes (and says so with
-- SET LOCAL docora.audit_pruning = 'on'); nobody updates. actor is the username as it was (no
-- foreign key: an account's history outlives it); NULL for an anonymous event such as a failed
-- login, whose username tried is in details.
CREATE TABLE IF NOT EXISTS audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor varchar(255),
    source_address varchar(64),
    action varchar(64) NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)*$'),
    target text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- Pages are keyset-paged by id (newest first); each filter has an index that walks in id order.
CREATE INDEX IF NOT EXISTS audit_events_actor_idx ON audit_events (actor, id);
CREATE INDEX IF NOT EXISTS audit_events_action_idx ON audit_events (action, id);
-- The area of an action ('retry' of 'retry.one'): the filter by area.
CREATE INDEX IF NOT EXISTS audit_events_area_idx
    ON audit_events (split_part(action, '.', 1), id);
-- Time ranges and pruning. A btree, not BRIN: with BRIN a day's range walked the id order from
-- the newest row down to it (70 ms at a million events, 200 days back; 1.4 ms with this index;
-- bench/audit_page.py).
CREATE INDEX IF NOT EXISTS audit_events_occurred_idx ON audit_events (occurred_at);

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit_events is append-only: rows cannot be updated'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF coalesce(current_setting('docora.audit_pruning', true), '') <> 'on' THEN
        RAISE EXCEPTION 'audit_events is append-only: rows are deleted only by retention pruning'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END
$$;
DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
