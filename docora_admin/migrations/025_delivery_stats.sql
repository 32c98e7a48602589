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

-- The 60 counts of a set of bucket numbers (NULLs, the failed attempts', are left out).
CREATE OR REPLACE FUNCTION delivery_latency_histogram(buckets integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(coalesce(c.n, 0) ORDER BY i)
    FROM generate_series(1, 60) i
    LEFT JOIN (SELECT b, count(*)::integer AS n FROM unnest(buckets) b GROUP BY b) c
           ON c.b = i
$$;

CREATE OR REPLACE FUNCTION delivery_latency_add(a integer[], b integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(x + y ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS t (x, y, i)
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

-- The rows of a set of attempts (`attempts`: a transition table or a query), in key order so
-- that two statements touching the same rows lock them in the same order.
CREATE OR REPLACE FUNCTION delivery_stats_from_attempts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_stats AS s (granularity, period_start, app_id, delivered, failed,
                                     latency)
    SELECT g.seconds,
           date_bin(make_interval(secs => g.seconds), n.finished_at, timestamptz 'epoch'),
           n.app_id,
           count(*) FILTER (WHERE n.outcome = 'delivered'),
           count(*) FILTER (WHERE n.outcome = 'failed'),
           delivery_latency_histogram(array_agg(delivery_latency_bucket(
               extract(epoch FROM n.finished_at - n.started_at) * 1000))
               FILTER (WHERE n.outcome = 'delivered'))
    FROM new_attempts n CROSS JOIN (VALUES (60), (3600)) AS g (seconds)
    WHERE n.outcome IN ('delivered', 'failed')
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (granularity, period_start, app_id) DO UPDATE
    SET delivered = s.delivered + EXCLUDED.delivered,
        failed = s.failed + EXCLUDED.failed,
        latency = delivery_latency_add(s.latency, EXCLUDED.latency);
    RETURN NULL;
END
$$;

-- In the statement (and so the transaction) that writes the attempts: the charts never disagree
-- with the log, and no periodic job has to guess which late-committing rows it has not seen.
DROP TRIGGER IF EXISTS delivery_stats_on_insert ON delivery_attempts;
CREATE TRIGGER delivery_stats_on_insert
    AFTER INSERT ON delivery_attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_stats_from_attempts();

-- The attempts already logged (within what the charts show), once.
INSERT INTO delivery_stats (granularity, period_start, app_id, delivered, failed, latency)
SELECT g.seconds,
       date_bin(make_interval(secs => g.seconds), a.finished_at, timestamptz 'epoch'),
       a.app_id,
       count(*) FILTER (WHERE a.outcome = 'delivered'),
       count(*) FILTER (WHERE a.outcome = 'failed'),
       delivery_latency_histogram(array_agg(delivery_latency_bucket(
           extract(epoch FROM a.finished_at - a.started_at) * 1000))
           FILTER (WHERE a.outcome = 'delivered'))
FROM delivery_attempts a CROSS JOIN (VALUES (60, interval '1 day'), (3600, interval '8 days'))
     AS g (seconds, kept)
WHERE a.outcome IN ('delivered', 'failed') AND a.finished_at >= now() - g.kept
GROUP BY 1, 2, 3
ON CONFLICT (granularity, period_start, app_id) DO NOTHING;
