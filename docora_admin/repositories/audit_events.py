"""The audit_events table: append-only (the database refuses UPDATE, and DELETE outside
retention pruning; see migration 010)."""
from psycopg.types.json import Jsonb


def insert(conn, *, action, actor, source_address, target, details):
    return conn.execute("""
        INSERT INTO audit_events (action, actor, source_address, target, details)
        VALUES (%s, %s, %s, %s, %s) RETURNING id, occurred_at
    """, (action, actor, source_address, target, Jsonb(details or {}))).fetchone()


# Each filter given adds its condition; the conditions are fixed text, the values parameters.
# (One statement with "%(x)s IS NULL OR …" for every filter let the planner walk the whole
# table for a filter matching nothing: 100-240 ms at a million events, bench/audit_page.py.)
_CONDITIONS = {
    "actor": "actor = %(actor)s",
    "action": "action = %(action)s",
    "area": "split_part(action, '.', 1) = %(area)s",
    "since": "occurred_at >= %(since)s",
    "until": "occurred_at < %(until)s",
    "before": "id < %(before)s",
}


def page(conn, *, actor=None, action=None, since=None, until=None, before_id=None, limit=50):
    """Newest first, keyset paged by id (`before_id`: the last id of the previous page).
    An `action` without a dot is an area and matches every action in it ('retry' matches
    'retry.one', 'logout' matches itself); one with a dot matches exactly."""
    values = {"actor": actor, "since": since, "until": until, "before": before_id,
              "action": action if action and "." in action else None,
              "area": action if action and "." not in action else None}
    where = [_CONDITIONS[name] for name, value in values.items() if value is not None]
    return conn.execute(
        "SELECT id, occurred_at, actor, source_address, action, target, details "
        "FROM audit_events " + (f"WHERE {' AND '.join(where)} " if where else "")
        + "ORDER BY id DESC LIMIT %(limit)s", {**values, "limit": limit}).fetchall()



def prune_before(conn, cutoff, batch=10_000):
    """Delete one batch of events older than `cutoff`; returns how many. The only deletion the
    table's trigger lets through, and only inside this transaction."""
    conn.execute("SET LOCAL docora.audit_pruning = 'on'")
    return conn.execute("""
        DELETE FROM audit_events WHERE id IN (
            SELECT id FROM audit_events WHERE occurred_at < %s ORDER BY id LIMIT %s)
    """, (cutoff, batch)).rowcount
