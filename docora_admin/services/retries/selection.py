"""What POST /admin/api/retry/selection and GET /admin/api/retry/estimate accept: the list's
filter (app_id, search, failed_since, failed_until, cause), or `links` (up to 1,000
{app_id, repository_id}), or `failed_again_of` (an operation id: its links that failed again).
A bad value is a 400 naming the field, and so is an empty selection (retrying everything is
retry/all); nothing is started."""
from ...errors import ApiError
from ...input_values import valid_id
from . import bulk_progress
from ..console import notification_list
from .retry import MAX_SELECTED_LINKS

FILTER_FIELDS = ("app_id", "search", "failed_since", "failed_until", "cause")
FIELDS = FILTER_FIELDS + ("links", "failed_again_of")


def parse(body):
    """A selection dict for services.retry.start_selection."""
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ApiError(400, f"Unknown field {unknown[0]!r}: send {', '.join(FIELDS)}")
    given = [name for name in ("links", "failed_again_of") if body.get(name) is not None]
    filtering = [name for name in FILTER_FIELDS if body.get(name) not in (None, "")]
    if len(given) > 1 or (given and filtering):
        raise ApiError(400, "Send either links, or failed_again_of, or filter fields "
                            f"({', '.join(FILTER_FIELDS)}), not several")
    if "links" in given:
        return {"app_id": None, "links": _links(body["links"])}
    if "failed_again_of" in given:
        source = body["failed_again_of"]
        if not bulk_progress.is_valid_operation_id(source):
            raise ApiError(400, "failed_again_of must be an operation id (bulk_<16 hex>)")
        return {"app_id": None, "failed_again_of": source}
    chosen = notification_list.parse_filter(body)
    if not any(chosen[name] for name in FILTER_FIELDS):
        # An empty selection is not "everything": that is POST /admin/api/retry/all.
        raise ApiError(400, "Send links, failed_again_of, or at least one filter field "
                            f"({', '.join(FILTER_FIELDS)}); to retry every failed link, "
                            "POST /admin/api/retry/all")
    return chosen


def _links(raw):
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "links must be a non-empty list of {app_id, repository_id}")
    if len(raw) > MAX_SELECTED_LINKS:
        raise ApiError(400, f"links may hold at most {MAX_SELECTED_LINKS:,} entries, "
                            f"got {len(raw):,}")
    links = []
    for n, item in enumerate(raw):
        if not (isinstance(item, dict) and valid_id(item.get("app_id"))
                and valid_id(item.get("repository_id"))):
            raise ApiError(400, f"links[{n}] must be an object with app_id and repository_id")
        links.append((item["app_id"], item["repository_id"]))
    return links
