"""The failed-notifications list: validated query parameters in, one page out."""
import math
from dataclasses import dataclass

from .. import db
from ..errors import ApiError
from ..repositories import failed_links

PAGE_SIZES = (10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20
SORT_KEYS = tuple(failed_links.SORT_COLUMNS)
MAX_SEARCH_LENGTH = 200
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    limit: int = DEFAULT_PAGE_SIZE
    sort_by: str = "updated_at"
    sort_order: str = "desc"
    search: str = ""
    app_id: str = ""

    def as_args(self, **changes):
        """Query-string arguments for a link to this list with `changes` applied."""
        values = {"page": self.page, "limit": self.limit, "sort_by": self.sort_by,
                  "sort_order": self.sort_order, "search": self.search, "app_id": self.app_id}
        values.update(changes)
        return {k: v for k, v in values.items() if v not in ("", None)}


def _int_arg(args, name, default, allowed=None):
    raw = args.get(name, "")
    if raw in ("", None):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be a whole number") from None
    if allowed is not None and value not in allowed:
        raise ApiError(400, f"{name} must be one of {', '.join(map(str, allowed))}")
    if value < 1 or value > MAX_PAGE:
        raise ApiError(400, f"{name} must be between 1 and {MAX_PAGE}")
    return value


def parse_query(args):
    """Validate list parameters from a mapping (request.args); raise ApiError(400) naming the
    bad one."""
    sort_by = args.get("sort_by") or "updated_at"
    if sort_by not in SORT_KEYS:
        raise ApiError(400, f"sort_by must be one of {', '.join(SORT_KEYS)}")
    sort_order = (args.get("sort_order") or "desc").lower()
    if sort_order not in ("asc", "desc"):
        raise ApiError(400, "sort_order must be asc or desc")
    search = (args.get("search") or "").strip()
    if len(search) > MAX_SEARCH_LENGTH or "\x00" in search:
        raise ApiError(400, f"search must be at most {MAX_SEARCH_LENGTH} characters of text")
    app_id = (args.get("app_id") or "").strip()
    if len(app_id) > 50 or "\x00" in app_id:
        raise ApiError(400, "app_id is not a valid app id")
    return ListQuery(
        page=_int_arg(args, "page", 1),
        limit=_int_arg(args, "limit", DEFAULT_PAGE_SIZE, PAGE_SIZES),
        sort_by=sort_by, sort_order=sort_order, search=search, app_id=app_id)


def failed_page(query):
    """Rows and pagination for a ListQuery: {"rows": [...], "pagination": {...}}."""
    with db.connection() as conn:
        total = failed_links.count_failed(conn, app_id=query.app_id, search=query.search)
        rows = failed_links.list_failed(
            conn, app_id=query.app_id, search=query.search, sort_by=query.sort_by,
            descending=query.sort_order == "desc", limit=query.limit,
            offset=(query.page - 1) * query.limit)
    return {"rows": rows, "pagination": {
        "page": query.page, "limit": query.limit, "total": total,
        "total_pages": max(1, math.ceil(total / query.limit))}}


def apps_with_failures():
    """Apps that have failed links, for the filter drop-down."""
    with db.connection() as conn:
        return failed_links.failed_count_by_app(conn)
