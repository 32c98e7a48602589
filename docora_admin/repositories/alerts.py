"""SQL of alerts (migration 026, services/alerts/): recording a state change once, the subject's
cool-down and folding, the delivery outbox per channel with its leases, every attempt, and the
failed-count rule's state."""
from psycopg.types.json import Jsonb


def record(conn, kind, subject, dedupe_key, state, facts, channels, cooldown_seconds):
    """In the state change's transaction: the alert, once per dedupe_key (None when another
    process or an earlier call already recorded it), with one pending delivery per channel.
    Due now, or at the end of the subject's cool-down: cooldown_seconds after the last of its
    alerts already due."""
    return conn.execute("""
        WITH inserted AS (
            INSERT INTO alerts (kind, subject, dedupe_key, state, facts, due_at)
            SELECT %(kind)s, %(subject)s::varchar, %(key)s, %(state)s, %(facts)s,
                   greatest(now(), coalesce(
                       (SELECT max(due_at) FROM alerts
                        WHERE subject = %(subject)s::varchar AND due_at <= now())
                       + make_interval(secs => %(cooldown)s), now()))
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING id, kind, subject, state, created_at, due_at
        ), deliveries AS (
            INSERT INTO alert_deliveries (alert_id, channel, next_attempt_at)
            SELECT i.id, c.channel, i.due_at
            FROM inserted i CROSS JOIN unnest(%(channels)s::text[]) AS c(channel)
        )
        SELECT * FROM inserted
    """, {"kind": kind, "subject": subject, "key": dedupe_key, "state": state,
          "facts": Jsonb(facts), "channels": list(channels),
          "cooldown": cooldown_seconds}).fetchone()


def fold_due(conn):
    """For each subject whose newest unsent alert is due and was held by the cool-down, fold
    its older unsent alerts into it (their deliveries end 'folded', it counts them): the
    changes within one cool-down go out as one alert. Returns how many folded."""
    return conn.execute("""
        WITH newest AS (
            SELECT * FROM (
                SELECT DISTINCT ON (a.subject) a.subject, a.id, a.due_at, a.created_at
                FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
                WHERE d.status = 'pending'
                ORDER BY a.subject, a.id DESC) last
            WHERE last.due_at <= now() AND last.due_at > last.created_at
        ), folded AS (
            UPDATE alerts a SET folded_into = n.id
            FROM newest n
            WHERE a.subject = n.subject AND a.id < n.id AND a.folded_into IS NULL
              AND EXISTS (SELECT FROM alert_deliveries d
                          WHERE d.alert_id = a.id AND d.status = 'pending')
            RETURNING a.id, a.folded_into, a.folded_count
        ), counted AS (
            UPDATE alerts a SET folded_count = a.folded_count + f.n
            FROM (SELECT folded_into, sum(1 + folded_count) AS n FROM folded
                  GROUP BY folded_into) f
            WHERE a.id = f.folded_into
        ), ended AS (
            UPDATE alert_deliveries d SET status = 'folded'
            FROM folded f WHERE d.alert_id = f.id AND d.status = 'pending'
        )
        SELECT count(*) AS n FROM folded
    """).fetchone()["n"]


def any_due(conn):
    return conn.execute("""
        SELECT EXISTS (SELECT FROM alert_deliveries
                       WHERE status = 'pending' AND next_attempt_at <= now()) AS due
    """).fetchone()["due"]


def claim_due(conn, limit, lease_seconds):
    """Up to `limit` deliveries due now, each claimed for `lease_seconds` (attempts + 1); two
    senders never claim the same one. With the alert's columns and the database's time."""
    return conn.execute("""
        WITH due AS (
            SELECT alert_id, channel FROM alert_deliveries
            WHERE status = 'pending' AND next_attempt_at <= now()
            ORDER BY next_attempt_at, alert_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE alert_deliveries d
            SET next_attempt_at = now() + make_interval(secs => %(lease)s),
                attempts = attempts + 1
            FROM due WHERE d.alert_id = due.alert_id AND d.channel = due.channel
            RETURNING d.alert_id, d.channel, d.attempts
        )
        SELECT c.alert_id, c.channel, c.attempts, now() AS started_at, a.kind, a.subject,
               a.state, a.facts, a.created_at, a.folded_count
        FROM claimed c JOIN alerts a ON a.id = c.alert_id
        ORDER BY c.alert_id, c.channel
    """, {"limit": limit, "lease": lease_seconds}).fetchall()


_ATTEMPT = """
    INSERT INTO alert_attempts (alert_id, channel, attempt, started_at, ok, http_status, error)
    SELECT alert_id, channel, attempts, %(started_at)s, %(ok)s, %(http_status)s, %(error)s
    FROM ended
"""


def mark_sent(conn, delivery, http_status):
    """The channel took it: sent (also when folded meanwhile: it went all the same), and the
    attempt recorded. Returns True when marked here."""
    return conn.execute(f"""
        WITH ended AS (
            UPDATE alert_deliveries SET status = 'sent', sent_at = now(), last_error = NULL
            WHERE alert_id = %(id)s AND channel = %(channel)s
              AND status IN ('pending', 'folded') AND attempts = %(attempt)s
            RETURNING alert_id, channel, attempts
        ), logged AS ({_ATTEMPT})
        SELECT count(*) AS n FROM ended
    """, {"id": delivery["alert_id"], "channel": delivery["channel"],
          "attempt": delivery["attempts"], "started_at": delivery["started_at"], "ok": True,
          "http_status": http_status, "error": None}).fetchone()["n"] == 1


def mark_unsent(conn, delivery, error, http_status, max_attempts, delay_seconds):
    """The attempt failed: recorded, and due again after `delay_seconds`, or given up at
    `max_attempts` ('failed'). Returns the delivery's status after (None: taken meanwhile)."""
    row = conn.execute(f"""
        WITH ended AS (
            UPDATE alert_deliveries
            SET last_error = %(error)s,
                status = CASE WHEN status = 'folded' THEN 'folded'
                              WHEN attempts >= %(max)s THEN 'failed' ELSE 'pending' END,
                next_attempt_at = now() + make_interval(secs => %(delay)s)
            WHERE alert_id = %(id)s AND channel = %(channel)s
              AND status IN ('pending', 'folded') AND attempts = %(attempt)s
            RETURNING alert_id, channel, attempts, status
        ), logged AS ({_ATTEMPT})
        SELECT status FROM ended
    """, {"id": delivery["alert_id"], "channel": delivery["channel"],
          "attempt": delivery["attempts"], "started_at": delivery["started_at"], "ok": False,
          "http_status": http_status, "error": error, "max": max_attempts,
          "delay": delay_seconds}).fetchone()
    return row["status"] if row else None


_LISTED = """
    SELECT a.id, a.kind, a.subject, a.state, a.facts, a.created_at, a.due_at,
           a.folded_into, a.folded_count,
           coalesce((SELECT json_agg(json_build_object(
                         'channel', d.channel, 'status', d.status, 'attempts', d.attempts,
                         'last_error', d.last_error, 'sent_at', d.sent_at,
                         'next_attempt_at', d.next_attempt_at) ORDER BY d.channel)
                     FROM alert_deliveries d WHERE d.alert_id = a.id), '[]') AS deliveries
    FROM alerts a
"""


def recent(conn, limit):
    """The newest alerts, each with its deliveries [{channel, status, attempts, last_error,
    sent_at, next_attempt_at}] (none when no channel was configured)."""
    return conn.execute(_LISTED + " ORDER BY a.id DESC LIMIT %s", (limit,)).fetchall()


def get(conn, alert_id):
    """One alert as `recent` lists it, or None."""
    return conn.execute(_LISTED + " WHERE a.id = %s", (alert_id,)).fetchone()


def delivery_counts(conn):
    """{(channel, status): n} over every recorded delivery (/metrics)."""
    rows = conn.execute("SELECT channel, status, count(*) AS n FROM alert_deliveries "
                        "GROUP BY channel, status").fetchall()
    return {(row["channel"], row["status"]): row["n"] for row in rows}


def attempt_counts(conn):
    """{(channel, ok): n} over every recorded attempt (/metrics)."""
    rows = conn.execute("SELECT channel, ok, count(*) AS n FROM alert_attempts "
                        "GROUP BY channel, ok").fetchall()
    return {(row["channel"], row["ok"]): row["n"] for row in rows}


def circuits_closed_unalerted(conn):
    """Apps whose last circuit alert says open while that episode has ended (its close alert
    was lost: the delivery that closed it commits before its alert, in autocommit):
    [{app_id, opened_at}]. Reads the alerts of the last 30 days (the retention)."""
    return conn.execute("""
        SELECT last.facts->>'app_id' AS app_id,
               (last.facts->>'opened_at')::timestamptz AS opened_at
        FROM (SELECT DISTINCT ON (subject) subject, kind, facts FROM alerts
              WHERE kind IN ('app_circuit_open', 'app_circuit_closed')
              ORDER BY subject, id DESC) last
        JOIN apps a ON a.app_id = last.facts->>'app_id'
        LEFT JOIN app_delivery_control c ON c.app_id = a.app_id
        WHERE last.kind = 'app_circuit_open'
          AND c.circuit_opened_at IS DISTINCT FROM (last.facts->>'opened_at')::timestamptz
    """).fetchall()


def count_entered_failed_since(conn, minutes, at_most=None):
    """Links that entered `failed` in the last `minutes` and are still failed (updated_at is
    when the status last changed; PostgreSQL's clock), counted up to `at_most` (None: all)."""
    return conn.execute("""
        SELECT count(*) AS n FROM (
            SELECT 1 FROM app_repositories
            WHERE status = 'failed' AND updated_at >= now() - make_interval(mins => %s)
            LIMIT %s) recent
    """, (minutes, at_most)).fetchone()["n"]


def start_firing(conn, rule):
    """The rule starts to fire: its new episode, or None when it was already firing (or
    another process flipped it first)."""
    row = conn.execute("""
        UPDATE alert_rules SET firing = true, episode = episode + 1, changed_at = now()
        WHERE rule = %s AND NOT firing RETURNING episode
    """, (rule,)).fetchone()
    return row["episode"] if row else None


def stop_firing(conn, rule):
    """The rule's condition is over: armed again. Returns True when it was firing."""
    return conn.execute("""
        UPDATE alert_rules SET firing = false, changed_at = now()
        WHERE rule = %s AND firing RETURNING rule
    """, (rule,)).fetchone() is not None


def prune_before(conn, days):
    """Forget alerts recorded more than `days` ago whose deliveries have all ended."""
    return conn.execute("""
        DELETE FROM alerts a
        WHERE a.created_at < now() - make_interval(days => %s)
          AND NOT EXISTS (SELECT FROM alert_deliveries d
                          WHERE d.alert_id = a.id AND d.status = 'pending')
    """, (days,)).rowcount
