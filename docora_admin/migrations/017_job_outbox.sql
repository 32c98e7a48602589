-- Committed "due", not yet pushed: every statement that makes links due for a new job (a bulk
-- chunk, a retry, a re-sync, a release, a back-off, the sweeper) writes one row here in the same
-- transaction, naming its links; the push that follows its commit deletes it. A row still here
-- after a few seconds is a push that never happened (the process died between commit and push,
-- Redis refused it): the watchdog pushes its links' current jobs again at once, whatever the
-- queue holds (services/jobs/outbox.py). Duplicates are harmless: a job claims only its
-- generation.
CREATE TABLE IF NOT EXISTS job_outbox (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The queue place (µs) the jobs were pushed at: pushed again, they keep their turn.
    stamp bigint NOT NULL,
    app_ids text[] NOT NULL,
    repository_ids text[] NOT NULL
);
CREATE INDEX IF NOT EXISTS job_outbox_created_at ON job_outbox (created_at);
