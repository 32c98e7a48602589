"""The audit_events table: append-only (the database refuses UPDATE, and DELETE outside
retention pruning; see migration 010)."""
from psycopg.types.json import Jsonb


def insert(conn, *, action, actor, source_address, target, details):
    return conn.execute("""
        INSERT INTO audit_events (action, actor, source_address, target, details)
        VALUES (%s, %s, %s, %s, %s) RETURNING id, occurred_at
    """, (action, actor, source_address, target, Jsonb(details or {}))).fetchone()


def page(conn, *, actor=None, action=None, since=None, until=None, before_id=None, limit=50):
    """Newest first, keyset paged by id (`before_id`: the last id of the previous page).
    `action` matches itself and the actions under it ('retry' matches 'retry.one')."""
    return conn.execute("""
        SELECT id, occurred_at, actor, source_address, action, target, details
        FROM audit_events
        WHERE (%(actor)s::text IS NULL OR actor = %(actor)s)
          AND (%(action)s::text IS NULL OR action = %(action)s
               OR action LIKE %(action)s || '.%%')
          AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s)
          AND (%(before)s::bigint IS NULL OR id < %(before)s)
        ORDER BY id DESC LIMIT %(limit)s
    """, {"actor": actor, "action": action, "since": since, "until": until,
          "before": before_id, "limit": limit}).fetchall()



def prune_before(conn, cutoff, batch=10_000):
    """Delete one batch of events older than `cutoff`; returns how many. The only deletion the
    table's trigger lets through, and only inside this transaction."""
    conn.execute("SET LOCAL docora.audit_pruning = 'on'")
    return conn.execute("""
        DELETE FROM audit_events WHERE id IN (
            SELECT id FROM audit_events WHERE occurred_at < %s ORDER BY id LIMIT %s)
    """, (cutoff, batch)).rowcount
