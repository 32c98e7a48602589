-- Delivery charts (the Charts page, GET /admin/api/stats/deliveries): per app and per minute
-- (kept a day) or hour (kept 8 days), the attempts that delivered and that failed, and a
-- histogram of the delivered attempts' durations (finished_at - started_at, both PostgreSQL's
-- clock) in fixed buckets, so that p50/p95 of any set of rows are a sum away. Reading a week of
-- raw attempts (millions of rows) takes seconds; these rows take milliseconds (bench/
-- delivery_stats.py).
--
-- Latency buckets (repositories/delivery_stats.py mirrors them; keep the two in step):
-- bucket 1 is [0, 10 ms); bucket k, 2 <= k < 60, is [10 * 1.25^(k-2), 10 * 1.25^(k-1)) ms;
-- bucket 60 is [10 * 1.25^58 ms, ∞), about 70 minutes and over.
CREATE OR REPLACE FUNCTION delivery_latency_bucket(ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ms < 10 THEN 1
                ELSE least(60, 2 + floor(ln(ms / 10) / ln(1.25))::integer) END
$$;

CREATE TABLE IF NOT EXISTS delivery_stats (
    granularity integer NOT NULL CHECK (granularity IN (60, 3600)),  -- seconds
    period_start timestamptz NOT NULL,  -- date_bin(granularity, finished_at, epoch)
    app_id varchar(50) NOT NULL,        -- no foreign key: a deleted app's history stays
    delivered integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    latency integer[] NOT NULL CHECK (cardinality(latency) = 60),
    PRIMARY KEY (granularity, period_start, app_id)
);

-- The trigger's function and the backfill below, written out for the 60 buckets: the histogram is
-- built with ARRAY[count(*) FILTER (WHERE b = 1), ...] and added up element by element with
-- ARRAY[s.latency[1] + EXCLUDED.latency[1], ...], plain expressions PostgreSQL evaluates without
-- a set-returning function (unnest, generate_series) per row.
-- Rows are grouped in key order so that two statements touching the same rows lock them in the
-- same order.
DO $do$
DECLARE
    build text := (SELECT string_agg(format('count(*) FILTER (WHERE b = %s)', i), ', ' ORDER BY i)
                   FROM generate_series(1, 60) i);
    added text := (SELECT string_agg(format('s.latency[%s] + EXCLUDED.latency[%s]', i, i), ', '
                                     ORDER BY i)
                   FROM generate_series(1, 60) i);
    -- The rows of the attempts in %3$s (a transition table or the log), %4$s choosing which.
    rollup text := $sql$
        INSERT INTO delivery_stats AS s (granularity, period_start, app_id, delivered, failed,
                                         latency)
        SELECT seconds, period_start, app_id,
               count(*) FILTER (WHERE outcome = 'delivered'),
               count(*) FILTER (WHERE outcome = 'failed'),
               ARRAY[%1$s]::integer[]
        FROM (SELECT g.seconds,
                     date_bin(make_interval(secs => g.seconds), n.finished_at,
                              timestamptz 'epoch') AS period_start,
                     n.app_id, n.outcome,
                     CASE WHEN n.outcome = 'delivered' THEN delivery_latency_bucket(
                         extract(epoch FROM n.finished_at - n.started_at) * 1000) END AS b
              FROM %3$s n
              CROSS JOIN (VALUES (60, interval '1 day'), (3600, interval '8 days'))
                   AS g (seconds, kept)
              WHERE n.outcome IN ('delivered', 'failed') AND %4$s) a
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (granularity, period_start, app_id) DO UPDATE
        SET delivered = s.delivered + EXCLUDED.delivered,
            failed = s.failed + EXCLUDED.failed,
            latency = ARRAY[%2$s]::integer[]
    $sql$;
BEGIN
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION delivery_stats_from_attempts() RETURNS trigger
        LANGUAGE plpgsql AS $body$
        BEGIN
            %s;
            RETURN NULL;
        END
        $body$
    $f$, format(rollup, build, added, 'new_attempts', 'true'));
    -- The attempts already logged (within what the charts show), once.
    EXECUTE format(rollup, build, added, 'delivery_attempts',
                   'n.finished_at >= now() - g.kept');
END
$do$;

-- In the statement (and so the transaction) that writes the attempts: the charts never disagree
-- with the log, and no periodic job has to guess which late-committing rows it has not seen.
DROP TRIGGER IF EXISTS delivery_stats_on_insert ON delivery_attempts;
CREATE TRIGGER delivery_stats_on_insert
    AFTER INSERT ON delivery_attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_stats_from_attempts();
