-- docora:no-transaction
-- The attempt inspector (issue 26): per attempt, the request it sent the app last (the one that
-- failed, or the last one delivered) and the app's answer, each bounded when written
-- (ATTEMPT_EXCERPT_BYTES; services/delivery/exchange.py) and formatted only when read. Details are
-- cleared, the attempt row kept, after ATTEMPT_DETAIL_RETENTION_DAYS or beyond the newest
-- ATTEMPT_DETAIL_PER_LINK attempts of a link (services/delivery/attempt_log.py).
ALTER TABLE delivery_attempts
    -- NULL: logged without this (before 024, or by a sweep); false: no request was sent; true:
    -- one was (its details below, unless pruned since).
    ADD COLUMN IF NOT EXISTS request_sent boolean,
    -- "POST <url>" and the request's header lines, secrets left out, one per line.
    ADD COLUMN IF NOT EXISTS request_head text,
    ADD COLUMN IF NOT EXISTS request_body bytea,          -- the first bytes of the body
    ADD COLUMN IF NOT EXISTS request_body_size bigint,    -- the whole body's size
    -- Whether the excerpt is the body's start only (a redaction may make it shorter anyway).
    ADD COLUMN IF NOT EXISTS request_body_truncated boolean,
    -- The answer's status line and header lines as received (bounded, secrets replaced).
    ADD COLUMN IF NOT EXISTS response_head bytea,
    ADD COLUMN IF NOT EXISTS response_body bytea,
    ADD COLUMN IF NOT EXISTS response_body_size bigint,   -- bytes of the body received
    ADD COLUMN IF NOT EXISTS response_body_truncated boolean,
    -- No answer: why (timeout, TLS, connection refused, ...).
    ADD COLUMN IF NOT EXISTS transport_error text;
-- The retention sweep: the attempts that still hold details, per link newest first (built
-- without blocking the attempt log's writes; the columns above are added without a rewrite).
DROP INDEX CONCURRENTLY IF EXISTS delivery_attempts_details_idx;
CREATE INDEX CONCURRENTLY delivery_attempts_details_idx
    ON delivery_attempts (link_id, id DESC) WHERE request_head IS NOT NULL;
