"""The notifications list: failed links, or links in progress (queued, between attempts,
delivering). Validated query parameters in, one page and the truthful counts around it out.

The filter (app, search, failed-since range) is the same one a bulk retry of "all matching"
freezes (services/retries/retry.start_selection), so the count next to the button is the number of
rows the button acts on.
"""
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from ... import db, error_causes
from ...errors import ApiError
from ...input_values import parse_time
from ...repositories import apps as apps_repo
from ...repositories import failed_links, in_progress_links, link_filters
from ..control import delivery_control
from . import link_state, list_params

PAGE_SIZES = list_params.PAGE_SIZES
DEFAULT_PAGE_SIZE = list_params.DEFAULT_PAGE_SIZE
VIEWS = ("failed", "in_progress")
SORT_KEYS = {"failed": tuple(failed_links.SORT_COLUMNS),
             "in_progress": tuple(in_progress_links.SORT_COLUMNS)}
DEFAULT_SORT = {"failed": "updated_at", "in_progress": "next_attempt_at"}
# The original Docora admin API's default order of GET /notifications/failed.
API_DEFAULT_SORT = {**DEFAULT_SORT, "failed": "last_scanned_at"}
MAX_SEARCH_LENGTH = 200
# The query parameters a list URL understands (the API's fix `view` by their path).
FILTER_PARAMS = ("app_id", "search", "failed_since", "failed_until", "cause")
LIST_PARAMS = ("page", "limit", "sort_by", "sort_order") + FILTER_PARAMS
EXPORT_PARAMS = ("sort_by", "sort_order") + FILTER_PARAMS
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    limit: int = DEFAULT_PAGE_SIZE
    sort_by: str = "updated_at"
    sort_order: str = "desc"
    search: str = ""
    app_id: str = ""
    view: str = "failed"
    failed_since: datetime | None = None
    failed_until: datetime | None = None
    # The cause of the links' error (error_causes.normalise), failed view only.
    cause: str = ""

    @property
    def filtered(self):
        return bool(self.search or self.app_id or self.failed_since or self.failed_until
                    or self.cause)

    def filter_args(self):
        """The filter alone, as query-string arguments (for the estimate and the bulk panel)."""
        return {k: v for k, v in {
            "app_id": self.app_id, "search": self.search,
            "failed_since": _iso(self.failed_since), "failed_until": _iso(self.failed_until),
            "cause": self.cause,
        }.items() if v}

    def as_args(self, **changes):
        """Query-string arguments for a link to this list with `changes` applied."""
        values = {"page": self.page, "limit": self.limit, "sort_by": self.sort_by,
                  "sort_order": self.sort_order, "search": self.search, "app_id": self.app_id,
                  "view": self.view if self.view != "failed" else "",
                  "failed_since": _iso(self.failed_since),
                  "failed_until": _iso(self.failed_until), "cause": self.cause}
        values.update(changes)
        return {k: v for k, v in values.items() if v not in ("", None)}


def _iso(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M") if moment else ""


def parse_filter(args):
    """The list filter from a mapping (query args or a JSON object): {app_id, search,
    failed_since, failed_until, cause}, empty values as None. ApiError 400 naming a bad field.
    A cause may be given as an error text: it is normalised (error_causes.normalise)."""
    search = args.get("search") or ""
    if not isinstance(search, str) or len(search.strip()) > MAX_SEARCH_LENGTH \
            or "\x00" in search:
        raise ApiError(400, f"search must be at most {MAX_SEARCH_LENGTH} characters of text")
    app_id = args.get("app_id") or ""
    if not isinstance(app_id, str) or len(app_id.strip()) > 50 or "\x00" in app_id:
        raise ApiError(400, "app_id is not a valid app id")
    since = parse_time(args.get("failed_since"), "failed_since")
    until = parse_time(args.get("failed_until"), "failed_until")
    if since and until and since >= until:
        raise ApiError(400, "failed_until must be later than failed_since")
    cause = args.get("cause") or ""
    if not isinstance(cause, str) or len(cause) > error_causes.MAX_ERROR_READ \
            or "\x00" in cause:
        raise ApiError(400, f"cause must be at most {error_causes.MAX_ERROR_READ} characters "
                            "of text")
    return {"app_id": app_id.strip() or None, "search": search.strip() or None,
            "failed_since": since, "failed_until": until,
            "cause": error_causes.normalise(cause) if cause.strip() else None}


def refuse_unknown(args, accepted):
    """ApiError(400) naming the first query parameter not in `accepted`, and the accepted ones:
    a misspelt `?q=` or `?per_page=` must not silently return the unfiltered list to a script.
    (The pages ignore unknown parameters instead: a bookmarked URL keeps working.)"""
    for name in args:
        if name not in accepted:
            shown = name if len(name) <= 40 and name.isprintable() else "(unprintable)"
            raise ApiError(400, f"unknown query parameter {shown!r}; accepted: "
                                f"{', '.join(accepted)}")


def parse_query(args, defaults=DEFAULT_SORT):
    """List parameters from a mapping (request.args), read as the original Docora admin API
    reads them (services/list_params: a bad page is 1, a limit not offered is 20, an unknown
    sort_order the view's default, an unknown sort_by a 400 "Invalid sort_by: <key>"); the
    filter is validated (ApiError 400 naming the bad field). `defaults`: the default sort key
    per view (API_DEFAULT_SORT for the JSON list, as the original orders it)."""
    view = args.get("view") or "failed"
    if view not in VIEWS:
        raise ApiError(400, f"view must be one of {', '.join(VIEWS)}")
    if view == "in_progress" and args.get("sort_by") == "updated_at":
        # a failed-list link switched to the other view
        args = {**args, "sort_by": "next_attempt_at"}
    common = list_params.parse(args, SORT_KEYS[view], defaults[view],
                               "desc" if view == "failed" else "asc")
    chosen = parse_filter(args)
    return ListQuery(
        page=min(common.page, MAX_PAGE), limit=common.limit,
        sort_by=common.sort_by, sort_order=common.sort_order, search=chosen["search"] or "",
        app_id=chosen["app_id"] or "", view=view, failed_since=chosen["failed_since"],
        failed_until=chosen["failed_until"],
        cause=(chosen["cause"] or "") if view == "failed" else "")


def _filter_kwargs(query, view="failed"):
    kwargs = {"app_id": query.app_id or None, "search": query.search or None,
              "since": query.failed_since, "until": query.failed_until}
    if view == "failed":
        kwargs["cause"] = query.cause or None
    return kwargs


def list_page(query, max_attempts):
    """Rows, pagination and counts for a ListQuery: {"rows", "pagination", "counts": {"failed",
    "in_progress"}}. Each row carries its state in words (services/console/link_state.py).

    The other view's count (for its tab and the empty state) is taken only where it is cheap:
    without a search or a range, an index counts it; with one, the tab shows no number rather
    than make every page pay for a second search (None)."""
    kwargs = _filter_kwargs(query, query.view)
    offset = (query.page - 1) * query.limit
    descending = query.sort_order == "desc"
    other = "in_progress" if query.view == "failed" else "failed"
    counters = {"failed": failed_links.count_failed,
                "in_progress": in_progress_links.count_in_progress}
    with db.connection() as conn:
        counts = {query.view: counters[query.view](conn, **kwargs), other: None}
        if not (query.search or query.failed_since or query.failed_until or query.cause):
            counts[other] = counters[other](conn, **_filter_kwargs(query, other))
        total = counts[query.view]
        if offset >= total:
            rows = []  # past the end: say so, do not run the query
        elif query.view == "failed":
            rows = failed_links.list_failed(conn, sort_by=query.sort_by, descending=descending,
                                            limit=query.limit, offset=offset, **kwargs)
        else:
            rows = in_progress_links.list_in_progress(
                conn, sort_by=query.sort_by, descending=descending, limit=query.limit,
                offset=offset, **kwargs)
    # Where each row's app stands (paused, circuit open): a waiting link of a held app is held.
    delivery = delivery_control.states_of({row["app_id"] for row in rows}) if rows else {}
    rows = [dict(row, max_attempts=max_attempts, delivery=delivery[row["app_id"]],
                 **link_state.describe(row, max_attempts, delivery=delivery[row["app_id"]]))
            for row in rows]
    return {"rows": rows, "counts": counts, "pagination": {
        "page": query.page, "limit": query.limit, "total": total,
        "total_pages": max(1, math.ceil(total / query.limit))}}


def export_rows(query, max_attempts):
    """Every link of the query's view and filter, in its sort order (page and limit ignored), as
    rows like list_page's, read a batch at a time: a generator that holds one pooled connection
    until it is exhausted or closed."""
    kwargs = _filter_kwargs(query, query.view)
    descending = query.sort_order == "desc"
    # The few apps held now (paused, circuit open): their waiting links are held, not queued.
    held = {app["app_id"]: app for app in delivery_control.held_apps()}
    with db.connection() as conn:
        if query.view == "failed":
            rows = failed_links.stream_failed(conn, sort_by=query.sort_by, descending=descending,
                                              **kwargs)
        else:
            rows = in_progress_links.stream_in_progress(
                conn, sort_by=query.sort_by, descending=descending, **kwargs)
        now = datetime.now(timezone.utc)
        for row in rows:
            yield dict(row, max_attempts=max_attempts, **link_state.describe(
                row, max_attempts, now=now, delivery=held.get(row["app_id"])))


def apps_for_filter(view, selected=None):
    """The filter drop-down of a list view: every app with links in it, by name, with how many;
    the selected app too (0 links) when it has none there, by its name."""
    with db.connection() as conn:
        rows = link_filters.count_by_app(conn, view)
        if selected and selected not in {row["app_id"] for row in rows}:
            app = apps_repo.get_app(conn, selected)
            rows.append({"app_id": selected, "links": 0, "app_name": app["app_name"] if app
                         else f"{selected} (no such app)"})
    return rows
