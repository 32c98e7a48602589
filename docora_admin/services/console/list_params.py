"""The list parameters of the original Docora admin API (DOCORA_CONTRACT.md §2), parsed one way
for every list: page, limit, sort_by, sort_order, search; and the pagination it answers."""
from dataclasses import dataclass

from ...errors import ApiError

PAGE_SIZES = (5, 10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20
SORT_ORDERS = ("asc", "desc")
MAX_PAGE = 10_000_000  # keeps OFFSET well inside PostgreSQL's bigint


@dataclass(frozen=True)
class ListParams:
    page: int
    limit: int
    sort_by: str
    sort_order: str
    search: str

    @property
    def offset(self):
        return (self.page - 1) * self.limit


def _whole_number(raw):
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def parse(args, sort_keys, default_sort, default_order):
    """ListParams from query `args`. A page below 1 or not a number is 1; a limit not in
    PAGE_SIZES is DEFAULT_PAGE_SIZE; a sort_order other than asc/desc is `default_order`; an
    unknown sort_by is ApiError(400, "Invalid sort_by: <key>")."""
    page = _whole_number(args.get("page"))
    limit = _whole_number(args.get("limit"))
    sort_by = args.get("sort_by") or default_sort
    if sort_by not in sort_keys:
        raise ApiError(400, f"Invalid sort_by: {sort_by}")
    sort_order = (args.get("sort_order") or "").lower()
    return ListParams(
        page=min(page, MAX_PAGE) if page is not None and page >= 1 else 1,
        limit=limit if limit in PAGE_SIZES else DEFAULT_PAGE_SIZE,
        sort_by=sort_by,
        sort_order=sort_order if sort_order in SORT_ORDERS else default_order,
        search=(args.get("search") or "").strip())


def pagination(params, total):
    """{page, limit, total, total_pages}; total_pages is at least 1 (an empty list has one,
    empty, page)."""
    return {"page": params.page, "limit": params.limit, "total": total,
            "total_pages": max(1, -(-total // params.limit))}
