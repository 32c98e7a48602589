"""The audit_events table: append-only (the database refuses UPDATE, and DELETE outside
retention pruning; see migration 010) and hash-chained (migration 019)."""
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



def prune(conn, batch=10_000):
    """Delete one batch of events older than the stored retention; returns how many. Only
    audit_prune() deletes (migration 019: it runs as the table's owner; the app's role has no
    DELETE on the table)."""
    return conn.execute("SELECT audit_prune(%s) AS n", (batch,)).fetchone()["n"]


def first_broken_link(conn):
    """(event id, what is wrong) for the first event, by id, that breaks the hash chain, or
    None: its hash does not match its fields (edited), its predecessor is gone (deleted) or it
    has none though it is not the oldest, or it shares its predecessor with another (inserted)."""
    found = conn.execute("""
        SELECT id, 'its fields no longer match its hash (edited)' AS problem
        FROM audit_events e WHERE row_hash IS DISTINCT FROM audit_event_hash(prev_hash, e)
        UNION ALL
        SELECT id, 'the event before it is missing (deleted), or it was inserted outside the chain'
        FROM audit_events e
        WHERE id > (SELECT min(id) FROM audit_events)
          AND (prev_hash IS NULL
               OR NOT EXISTS (SELECT 1 FROM audit_events p WHERE p.row_hash = e.prev_hash))
        UNION ALL
        SELECT id, 'another event claims the same predecessor (inserted)'
        FROM (SELECT id, count(*) OVER (PARTITION BY prev_hash) AS claims, row_number() OVER (
                  PARTITION BY prev_hash ORDER BY id) AS nth
              FROM audit_events WHERE prev_hash IS NOT NULL) c
        WHERE claims > 1 AND nth > 1
        ORDER BY id LIMIT 1
    """).fetchone()
    return (found["id"], found["problem"]) if found else None


def count(conn):
    return conn.execute("SELECT count(*) AS n FROM audit_events").fetchone()["n"]
