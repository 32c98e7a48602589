-- Alerts (services/alerts/): an app's circuit opened or closed, a repository's circuit opened, a
-- bulk operation ended with failures, the failed count rose by more than ALERT_FAILED_RISE_COUNT
-- in ALERT_FAILED_RISE_MINUTES, or an operator's test alert.
--
-- One row per state change, inserted in the transaction that makes the change: dedupe_key
-- names the change (the app's circuit episode by the time it opened, the repository's
-- circuit_episode, the operation id, the rule's episode), so several workers that see the same
-- transition make one row, and a crash after the commit leaves the row for the sender.
-- Cool-down per subject (ALERT_COOLDOWN_MINUTES): a change within the cool-down of the
-- subject's last alert is due only at the cool-down's end; when it comes, the newest change of
-- the subject is sent and the older ones still unsent are folded into it (folded_count), so a
-- flapping circuit sends at most one alert per cool-down, and the last one says how it is now.
CREATE TABLE IF NOT EXISTS alerts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind varchar(32) NOT NULL CHECK (kind IN ('app_circuit_open', 'app_circuit_closed',
        'repository_circuit_open', 'operation_failures', 'failed_rise', 'test')),
    -- 'app:<app_id>', 'repository:<repository_id>', 'operation:<id>', 'failed_links',
    -- 'test:<id>': the cool-down and the folding are per subject.
    subject varchar(120) NOT NULL,
    dedupe_key varchar(200) NOT NULL UNIQUE,
    state varchar(32) NOT NULL,
    -- The change's facts as they were (ids, counts, the error), for the message and the page.
    facts jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Not sent before (the subject's cool-down).
    due_at timestamptz NOT NULL DEFAULT now(),
    folded_into bigint REFERENCES alerts (id) ON DELETE SET NULL,
    -- Changes of the subject folded into this one (sent as "N earlier changes").
    folded_count integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_subject_idx ON alerts (subject, due_at);

-- One row per (alert, channel configured when it was recorded); a sender claims a row by
-- moving next_attempt_at a lease ahead (FOR UPDATE SKIP LOCKED), as the sync_failed outbox does.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel varchar(16) NOT NULL CHECK (channel IN ('webhook', 'email')),
    status varchar(16) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'failed', 'folded')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    sent_at timestamptz,
    PRIMARY KEY (alert_id, channel)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due_idx ON alert_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- Every attempt to deliver an alert on a channel: when, whether it went, the HTTP status, the
-- error (scrubbed: never the webhook URL, never a password).
CREATE TABLE IF NOT EXISTS alert_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id bigint NOT NULL,
    channel varchar(16) NOT NULL,
    attempt integer NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    ok boolean NOT NULL,
    http_status integer,
    error text,
    FOREIGN KEY (alert_id, channel) REFERENCES alert_deliveries (alert_id, channel)
        ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS alert_attempts_alert_idx ON alert_attempts (alert_id, channel, id);

-- Rules checked periodically (the failed-count rise): whether the rule is firing now, and how
-- many times it started to (the episode names the alert). Flipped by one UPDATE: of several
-- workers checking at once, one makes the alert.
CREATE TABLE IF NOT EXISTS alert_rules (
    rule varchar(32) PRIMARY KEY,
    firing boolean NOT NULL DEFAULT false,
    episode integer NOT NULL DEFAULT 0,
    changed_at timestamptz
);
INSERT INTO alert_rules (rule) VALUES ('failed_rise') ON CONFLICT DO NOTHING;
