"""Apps as the original Docora admin API lists and shows them (DOCORA_CONTRACT.md §2), counted
as the console's apps pages count them: repository_count is the app's links, and
failed_notification_count its links in `failed`."""
from ... import db
from ...errors import ApiError
from ...redact import scrub
from ...repositories import apps as apps_repo
from . import list_params
from ..control import repository_circuit

SORT_KEYS = tuple(apps_repo.APP_SORT_COLUMNS)
DEFAULT_SORT, DEFAULT_ORDER = "created_at", "desc"  # newest first, as the original


def _iso(moment):
    return moment.isoformat() if moment is not None else None


def _summary_json(row):
    return {"app_id": row["app_id"], "app_name": row["app_name"], "base_url": row["base_url"],
            "created_at": _iso(row["created_at"]), "repository_count": row["links"],
            "failed_notification_count": row["failed"]}


def list_page(args):
    """{data: [app summaries], pagination} for query `args` (page, limit, sort_by, sort_order,
    search; see list_params.parse). ApiError 400 for an unknown sort_by."""
    params = list_params.parse(args, SORT_KEYS, DEFAULT_SORT, DEFAULT_ORDER)
    with db.connection() as conn:
        rows, total = apps_repo.page_of_apps(conn, params.search, params.sort_by,
                                             params.sort_order, params.limit, params.offset)
    return {"data": [_summary_json(row) for row in rows],
            "pagination": list_params.pagination(params, total)}


def detail(app_id):
    """One app: its summary, contact fields, snapshot_count (snapshots of its repositories),
    delivery_count (files delivered to it) and its repositories, each with its link's status and
    its git circuit. ApiError 404 "App not found"."""
    with db.connection() as conn:
        app = apps_repo.app_with_counts(conn, app_id)
        if app is None:
            raise ApiError(404, "App not found")
        links = apps_repo.list_app_links(conn, app_id)
        circuits = repository_circuit.states_of((row["repository_id"] for row in links), conn)
    return {**_summary_json(app), "email": app["email"], "website": app["website"],
            "description": app["description"], "snapshot_count": app["snapshots"],
            "delivery_count": app["delivered_files"],
            "repositories": [{
                "repository_id": row["repository_id"],
                # Docora stores private repositories' URLs with user:token@ in them.
                "github_url": scrub(row["github_url"]),
                "owner": row["owner"], "name": row["name"], "status": row["status"],
                "last_scanned_at": _iso(row["last_scanned_at"]),
                "circuit_open": circuits[row["repository_id"]]["circuit_open"],
                # Ours: more of the link, and the circuit as the console shows it.
                "retry_count": row["retry_count"], "last_error": row["last_error"],
                "updated_at": _iso(row["updated_at"]),
                # A failed link an operator dismissed: bulk retries skip it.
                "dismissed": {"at": _iso(row["dismissed_at"]), "by": row["dismissed_by"],
                              "reason": row["dismiss_reason"]} if row["dismissed_at"] else None,
                "circuit": circuits[row["repository_id"]]["circuit"],
            } for row in links]}
