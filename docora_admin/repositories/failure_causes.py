"""Failed links grouped by the cause of their error, and dismissal (migration 023).

The grouped view without a search or a failed-since range reads the failure_causes table (kept by
statement triggers on app_repositories: one row per cause and app with its count of failed, not
dismissed links) and takes first and last seen from two probes per cause of the partial
(error_cause, updated_at) index: a million failed links cost a few hundred rows and two probes
per cause (bench/failure_causes.py). With a search or a range, the matching links are grouped
(the list's own filter, repositories/link_filters.py).
"""
from psycopg import sql

from . import link_filters

# Per cause: its links, its apps (by how many links, then name) and first/last seen.
_SUMMARY = """
    WITH per_app AS (
        -- A key's count is the sum of its rows (migration 023: writers never wait for a row).
        SELECT f.cause, f.app_id, sum(f.links)::bigint AS links FROM failure_causes f
        WHERE true {app}
        GROUP BY f.cause, f.app_id HAVING sum(f.links) > 0
    ), groups AS (
        SELECT f.cause, sum(f.links)::bigint AS links,
               jsonb_agg(jsonb_build_object('app_id', f.app_id, 'app_name', a.app_name,
                                            'count', f.links)
                         ORDER BY f.links DESC, a.app_name, f.app_id) AS apps
        FROM per_app f LEFT JOIN apps a ON a.app_id = f.app_id
        GROUP BY f.cause
    )
    SELECT g.cause, g.links, g.apps, first.at AS first_seen, last.at AS last_seen
    FROM groups g
    CROSS JOIN LATERAL (SELECT ar.updated_at AS at FROM app_repositories ar
                        WHERE {failed} AND ar.error_cause = g.cause {app_link}
                        ORDER BY ar.updated_at LIMIT 1) first
    CROSS JOIN LATERAL (SELECT ar.updated_at AS at FROM app_repositories ar
                        WHERE {failed} AND ar.error_cause = g.cause {app_link}
                        ORDER BY ar.updated_at DESC LIMIT 1) last
    ORDER BY g.links DESC, g.cause
"""

_MATCHED = """
    WITH per_app AS (
        SELECT m.error_cause AS cause, m.app_id, count(*) AS links,
               min(m.updated_at) AS first_seen, max(m.updated_at) AS last_seen
        FROM ({matching}) m
        GROUP BY 1, 2
    )
    SELECT p.cause, sum(p.links)::bigint AS links,
           jsonb_agg(jsonb_build_object('app_id', p.app_id, 'app_name', a.app_name,
                                        'count', p.links)
                     ORDER BY p.links DESC, a.app_name, p.app_id) AS apps,
           min(p.first_seen) AS first_seen, max(p.last_seen) AS last_seen
    FROM per_app p LEFT JOIN apps a ON a.app_id = p.app_id
    GROUP BY p.cause
    ORDER BY links DESC, p.cause
"""


def grouped(conn, app_id=None, search=None, since=None, until=None):
    """[{cause, links, apps [{app_id, app_name, count}], first_seen, last_seen}] of the failed,
    not dismissed links matching the list's filter, most links first."""
    params = {"app_id": app_id, "since": since, "until": until}
    if not search and since is None and until is None:
        query = sql.SQL(_SUMMARY).format(
            app=sql.SQL("AND f.app_id = %(app_id)s" if app_id else ""),
            app_link=sql.SQL("AND ar.app_id = %(app_id)s" if app_id else ""),
            failed=sql.SQL(link_filters.FAILED))
        return conn.execute(query, params).fetchall()
    # Each matching link once (the search's UNION keeps the id), with what a group needs.
    columns = sql.SQL("ar.id, ar.error_cause, ar.app_id, ar.updated_at")
    if search:
        params["pattern"] = link_filters.search_pattern(search)
        matching = link_filters.matching("failed", app_id, search, since, until, columns)
    else:
        matching = sql.SQL("SELECT {} FROM app_repositories ar WHERE {} {}").format(
            columns, sql.SQL(link_filters.FAILED), link_filters.scope(app_id, since, until))
    return conn.execute(sql.SQL(_MATCHED).format(matching=matching), params).fetchall()


def compact(conn):
    """Merge the summary rows of each (cause, app) into one; returns how many rows went."""
    return conn.execute("SELECT failure_causes_compact() AS n").fetchone()["n"]


def dismiss_link(conn, app_id, repository_id, actor, reason):
    """Dismiss one failed link. Returns {status, dismissed_at} of the link when it was dismissed
    now; None when it is missing, not failed or dismissed already (link_state tells which)."""
    return conn.execute("""
        UPDATE app_repositories
        SET dismissed_at = now(), dismissed_by = %s, dismiss_reason = %s
        WHERE app_id = %s AND repository_id = %s AND status = 'failed'
          AND dismissed_at IS NULL
        RETURNING app_id, repository_id, error_cause, dismissed_at
    """, (actor, reason, app_id, repository_id)).fetchone()


def undismiss_link(conn, app_id, repository_id):
    """Undismiss one link: it is failed again in the lists. Returns the link as it was
    dismissed (by, reason), or None when it is missing or not dismissed."""
    return conn.execute("""
        WITH before AS (
            SELECT id, dismissed_by, dismiss_reason, dismissed_at FROM app_repositories
            WHERE app_id = %s AND repository_id = %s AND status = 'failed'
              AND dismissed_at IS NOT NULL
            FOR UPDATE
        )
        UPDATE app_repositories ar
        SET dismissed_at = NULL, dismissed_by = NULL, dismiss_reason = NULL
        FROM before WHERE ar.id = before.id
        RETURNING ar.app_id, ar.repository_id, ar.error_cause, before.dismissed_by,
                  before.dismiss_reason, before.dismissed_at
    """, (app_id, repository_id)).fetchone()


def link_state(conn, app_id, repository_id):
    """{status, dismissed_at} of a link, or None when there is no such link."""
    return conn.execute("""
        SELECT status, dismissed_at FROM app_repositories
        WHERE app_id = %s AND repository_id = %s
    """, (app_id, repository_id)).fetchone()


def dismiss_cause(conn, cause, actor, reason, app_id=None):
    """Dismiss every failed, not dismissed link with this cause (of one app, when app_id).
    Returns how many."""
    return conn.execute(sql.SQL("""
        UPDATE app_repositories ar
        SET dismissed_at = now(), dismissed_by = %(actor)s, dismiss_reason = %(reason)s
        WHERE {failed} AND ar.error_cause = %(cause)s {app}
    """).format(failed=sql.SQL(link_filters.FAILED),
                app=sql.SQL("AND ar.app_id = %(app_id)s" if app_id else "")),
        {"actor": actor, "reason": reason, "cause": cause, "app_id": app_id}).rowcount


def undismiss_cause(conn, cause, app_id=None):
    """Undismiss every dismissed link with this cause (of one app, when app_id). Returns how
    many."""
    return conn.execute(sql.SQL("""
        UPDATE app_repositories ar
        SET dismissed_at = NULL, dismissed_by = NULL, dismiss_reason = NULL
        WHERE ar.status = 'failed' AND ar.dismissed_at IS NOT NULL
          AND ar.error_cause = %(cause)s {app}
    """).format(app=sql.SQL("AND ar.app_id = %(app_id)s" if app_id else "")),
        {"cause": cause, "app_id": app_id}).rowcount


def count_dismissed(conn, app_id=None):
    """How many links are dismissed (of one app, when app_id)."""
    return conn.execute(sql.SQL("""
        SELECT count(*) AS n FROM app_repositories ar
        WHERE ar.status = 'failed' AND ar.dismissed_at IS NOT NULL {app}
    """).format(app=sql.SQL("AND ar.app_id = %(app_id)s" if app_id else "")),
        {"app_id": app_id}).fetchone()["n"]


def list_dismissed(conn, limit, offset, app_id=None):
    """A page of dismissed links, the latest dismissal first, with their app and repository."""
    return conn.execute(sql.SQL("""
        SELECT ar.app_id, a.app_name, ar.repository_id, r.owner, r.name, ar.last_error,
               ar.error_cause, ar.retry_count, ar.updated_at, ar.dismissed_at, ar.dismissed_by,
               ar.dismiss_reason
        FROM (SELECT ar.id FROM app_repositories ar
              WHERE ar.status = 'failed' AND ar.dismissed_at IS NOT NULL {app}
              ORDER BY ar.dismissed_at DESC, ar.id DESC
              LIMIT %(limit)s OFFSET %(offset)s) page
        JOIN app_repositories ar ON ar.id = page.id
        JOIN apps a ON a.app_id = ar.app_id
        JOIN repositories r ON r.repository_id = ar.repository_id
        ORDER BY ar.dismissed_at DESC, ar.id DESC
    """).format(app=sql.SQL("AND ar.app_id = %(app_id)s" if app_id else "")),
        {"app_id": app_id, "limit": limit, "offset": offset}).fetchall()
