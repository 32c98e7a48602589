-- Failures grouped by cause, and dismissal (issue 26, items 1 and 2).
--
-- error_cause: the failed link's error with numbers, ids, hashes, paths and URLs folded
-- (docora_admin/error_causes.py holds the same rules; tests/test_failure_causes.py proves they
-- agree). A trigger computes it whenever a failed link's error is written, so every writer (this
-- console, the original Docora service, a script) keeps it true; existing rows are backfilled
-- below.
--
-- Dismissal is its own columns, not a status: the original dashboard and scripts know only
-- Docora's statuses (DOCORA_CONTRACT.md), so a dismissed link stays `failed` there and is told
-- apart here by dismissed_at. A link that leaves `failed` (a single retry, a re-sync) stops
-- being dismissed.
ALTER TABLE app_repositories ADD COLUMN IF NOT EXISTS error_cause text;
ALTER TABLE app_repositories ADD COLUMN IF NOT EXISTS dismissed_at timestamptz;
ALTER TABLE app_repositories ADD COLUMN IF NOT EXISTS dismissed_by text;
ALTER TABLE app_repositories ADD COLUMN IF NOT EXISTS dismiss_reason text;

CREATE OR REPLACE FUNCTION docora_error_cause(error text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT coalesce(nullif(btrim(left(btrim(
        regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        regexp_replace(regexp_replace(regexp_replace(left(error, 1000),
            '[a-z][a-z0-9+.-]*://[^ \t\r\n''"<>]+', '<url>', 'gi'),
            '(^|[ \t\r\n''"(=:])/[^ \t\r\n''"<>()/]+/[^ \t\r\n''"<>()]*', '\1<path>', 'gi'),
            '(^|[^0-9a-z_.-])[a-z0-9-]+(\.[a-z0-9-]+)+\.[a-z][a-z0-9-]*(?![0-9a-z_.-])', '\1<host>',
            'gi'),
            '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'gi'),
            '(^|[^0-9a-z_])(app|repo|bulk)_[0-9a-f]{8,}', '\1<id>', 'gi'),
            '(^|[^0-9a-z_])(?=[0-9]*[a-f])[0-9a-f]{8,}(?![0-9a-z_])', '\1<hash>', 'gi'),
            '(?<![0-9a-z_.])(?<!http )(?<!status )(?<!code )[0-9]+(?:\.[0-9]+)*', 'N', 'gi'),
            '[ \t\r\n]+', ' ', 'g'),
        ' '), 200), ' '), ''), 'Unknown error')
$fn$;

-- Row trigger: the cause of a failed link's error; a link leaving `failed` is no longer
-- dismissed. The WHEN clause keeps plpgsql out of every other update (a bulk reset sets
-- last_error NULL and leaves `failed`: only its rare dismissed rows would qualify, and a bulk
-- retry never selects those).
CREATE OR REPLACE FUNCTION app_repositories_failure_fields() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'failed' THEN
        NEW.error_cause := docora_error_cause(NEW.last_error);
    ELSE
        NEW.dismissed_at := NULL;
        NEW.dismissed_by := NULL;
        NEW.dismiss_reason := NULL;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS app_repositories_failure_fields_insert ON app_repositories;
CREATE TRIGGER app_repositories_failure_fields_insert BEFORE INSERT ON app_repositories
    FOR EACH ROW WHEN (NEW.status = 'failed')
    EXECUTE FUNCTION app_repositories_failure_fields();
DROP TRIGGER IF EXISTS app_repositories_failure_fields_update ON app_repositories;
CREATE TRIGGER app_repositories_failure_fields_update BEFORE UPDATE ON app_repositories
    FOR EACH ROW WHEN ((NEW.status = 'failed'
                        AND (OLD.status IS DISTINCT FROM 'failed'
                             OR OLD.last_error IS DISTINCT FROM NEW.last_error
                             OR NEW.error_cause IS NULL))
                       OR (NEW.status <> 'failed' AND NEW.dismissed_at IS NOT NULL))
    EXECUTE FUNCTION app_repositories_failure_fields();

UPDATE app_repositories SET error_cause = docora_error_cause(last_error)
WHERE status = 'failed' AND error_cause IS NULL;

-- failure_causes: how many failed, not dismissed links each (cause, app) has, kept by
-- statement triggers on app_repositories (one call per statement, fed by its transition
-- tables: a 1,000-row chunk of a bulk retry is one call), in the same transaction as the links,
-- so that the grouped view of a million failed links reads a few hundred rows instead of
-- grouping a million (bench/failure_causes.py). First and last seen are read from the partial
-- index below, two probes per cause.
--
-- A key's count is the sum of its rows. A writer adds its delta to a row of the key that no
-- other transaction holds (FOR UPDATE SKIP LOCKED), or inserts a row of its own: it never waits
-- for another writer, so two transactions changing the same groups in different orders cannot
-- deadlock, and concurrent failures of one cause do not queue behind each other.
-- failure_causes_compact() (a periodic task, every minute) merges a key's rows again.
CREATE TABLE IF NOT EXISTS failure_causes (
    id bigserial PRIMARY KEY,
    cause text NOT NULL,
    app_id varchar(50) NOT NULL,
    links bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS failure_causes_key_idx ON failure_causes (cause, app_id);

CREATE OR REPLACE FUNCTION failure_causes_add(delta_causes text[], delta_apps text[],
                                              deltas bigint[]) RETURNS void
LANGUAGE sql AS $$
    WITH d AS (
        SELECT cause, app_id, n FROM unnest(delta_causes, delta_apps, deltas) AS d(cause, app_id, n)
    ), free AS MATERIALIZED (
        SELECT f.id, f.cause, f.app_id FROM failure_causes f
        WHERE (f.cause, f.app_id) IN (SELECT cause, app_id FROM d)
        FOR UPDATE SKIP LOCKED
    ), chosen AS (
        SELECT DISTINCT ON (cause, app_id) id, cause, app_id FROM free
        ORDER BY cause, app_id, id
    ), added AS (
        UPDATE failure_causes f SET links = f.links + d.n
        FROM chosen c JOIN d ON d.cause = c.cause AND d.app_id = c.app_id
        WHERE f.id = c.id
    )
    INSERT INTO failure_causes (cause, app_id, links)
    SELECT d.cause, d.app_id, d.n FROM d
    WHERE NOT EXISTS (SELECT FROM chosen c WHERE c.cause = d.cause AND c.app_id = d.app_id);
$$;

-- Merge each key's rows into one (and drop keys whose sum is 0), skipping rows a writer holds:
-- those are merged next time. Returns how many rows it removed.
CREATE OR REPLACE FUNCTION failure_causes_compact() RETURNS bigint
LANGUAGE sql AS $$
    WITH spread AS (
        SELECT cause, app_id FROM failure_causes GROUP BY cause, app_id
        HAVING count(*) > 1 OR sum(links) = 0
    ), gone AS (
        DELETE FROM failure_causes f
        WHERE f.id IN (SELECT f2.id FROM failure_causes f2
                       JOIN spread s ON s.cause = f2.cause AND s.app_id = f2.app_id
                       FOR UPDATE OF f2 SKIP LOCKED)
        RETURNING f.cause, f.app_id, f.links
    ), merged AS (
        INSERT INTO failure_causes (cause, app_id, links)
        SELECT cause, app_id, sum(links) FROM gone GROUP BY cause, app_id
        HAVING sum(links) <> 0
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM merged);
$$;

CREATE OR REPLACE FUNCTION failure_causes_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    delta_causes text[];
    delta_apps text[];
    deltas bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(cause), array_agg(app_id), array_agg(n)
        INTO delta_causes, delta_apps, deltas
        FROM (SELECT coalesce(error_cause, 'Unknown error') AS cause, app_id, count(*) AS n
              FROM new_links WHERE status = 'failed' AND dismissed_at IS NULL
              GROUP BY 1, 2) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(cause), array_agg(app_id), array_agg(n)
        INTO delta_causes, delta_apps, deltas
        FROM (SELECT coalesce(error_cause, 'Unknown error') AS cause, app_id, -count(*) AS n
              FROM old_links WHERE status = 'failed' AND dismissed_at IS NULL
              GROUP BY 1, 2) d;
    ELSE
        -- Most updates (a claim, a lease, a scan time) touch no failed link: say so cheaply.
        IF NOT EXISTS (SELECT FROM old_links WHERE status = 'failed')
           AND NOT EXISTS (SELECT FROM new_links WHERE status = 'failed') THEN
            RETURN NULL;
        END IF;
        SELECT array_agg(cause), array_agg(app_id), array_agg(n)
        INTO delta_causes, delta_apps, deltas
        FROM (SELECT cause, app_id, sum(n) AS n
              FROM (SELECT coalesce(error_cause, 'Unknown error') AS cause, app_id, -1 AS n
                    FROM old_links WHERE status = 'failed' AND dismissed_at IS NULL
                    UNION ALL
                    SELECT coalesce(error_cause, 'Unknown error'), app_id, 1
                    FROM new_links WHERE status = 'failed' AND dismissed_at IS NULL) rows
              GROUP BY 1, 2 HAVING sum(n) <> 0) d;
    END IF;
    IF delta_causes IS NOT NULL THEN
        PERFORM failure_causes_add(delta_causes, delta_apps, deltas);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION failure_causes_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM failure_causes;
    RETURN NULL;
END
$$;

-- Rebuild from the links (the migration's first count; also a repair should the table ever be
-- edited by hand).
CREATE OR REPLACE FUNCTION failure_causes_recount() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM failure_causes;
    INSERT INTO failure_causes (cause, app_id, links)
    SELECT coalesce(error_cause, 'Unknown error'), app_id, count(*) FROM app_repositories
    WHERE status = 'failed' AND dismissed_at IS NULL GROUP BY 1, 2;
$$;

LOCK TABLE app_repositories IN SHARE ROW EXCLUSIVE MODE;
SELECT failure_causes_recount();

DROP TRIGGER IF EXISTS failure_causes_insert ON app_repositories;
CREATE TRIGGER failure_causes_insert AFTER INSERT ON app_repositories
    REFERENCING NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION failure_causes_count();
DROP TRIGGER IF EXISTS failure_causes_update ON app_repositories;
CREATE TRIGGER failure_causes_update AFTER UPDATE ON app_repositories
    REFERENCING OLD TABLE AS old_links NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION failure_causes_count();
DROP TRIGGER IF EXISTS failure_causes_delete ON app_repositories;
CREATE TRIGGER failure_causes_delete AFTER DELETE ON app_repositories
    REFERENCING OLD TABLE AS old_links
    FOR EACH STATEMENT EXECUTE FUNCTION failure_causes_count();
DROP TRIGGER IF EXISTS failure_causes_truncate ON app_repositories;
CREATE TRIGGER failure_causes_truncate AFTER TRUNCATE ON app_repositories
    FOR EACH STATEMENT EXECUTE FUNCTION failure_causes_clear();

-- First and last seen per cause, the cause filter of the failed list and the walk of "Retry this
-- group" (keyset on (updated_at, id)); the same per app.
CREATE INDEX IF NOT EXISTS app_repositories_failed_cause_idx
    ON app_repositories (error_cause, updated_at, id)
    WHERE status = 'failed' AND dismissed_at IS NULL;
CREATE INDEX IF NOT EXISTS app_repositories_failed_app_cause_idx
    ON app_repositories (app_id, error_cause, updated_at, id)
    WHERE status = 'failed' AND dismissed_at IS NULL;
-- The Dismissed view, newest dismissal first, and the dismissed links a count subtracts.
CREATE INDEX IF NOT EXISTS app_repositories_dismissed_idx
    ON app_repositories (dismissed_at, id)
    WHERE status = 'failed' AND dismissed_at IS NOT NULL;
