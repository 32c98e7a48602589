"""What the console reads: the lists, the overview, the apps and links as pages and JSON
show them, health and metrics.

Modules and their public functions:

apps: Apps as the original Docora admin API lists and shows them (DOCORA_CONTRACT.md §2),
    counted as the console's apps pages count them: repository_count is the app's links, and
    failed_notification_count its links in `failed`.
    list_page, detail

delivery_charts: The Charts page's SVG, as numbers a template draws: bars of delivered and
    failed attempts per period, and lines of p50/p95 delivery time.
    nice_max, duration_text, volume_chart, latency_chart, geometry

delivery_stats: Deliveries and failures over time, overall or for one app, per minute (last
    hour) or per hour (last day, week), with success rate and p50/p95 delivery time.
    parse_query, percentile, deliveries, deliveries_json, app_choices, prune

failure_causes: Failed links grouped by cause (the causes page and its JSON twin), and the
    Dismissed view.
    groups, group_json, dismissed_page, dismissed_row_json, compact_summary, count_dismissed

health: Readiness: do PostgreSQL and Redis answer, within a short time?.
    readiness

link_state: A link's status in the words an operator understands (DESIGN.md §9), from the link's
    row:.
    clock, until, describe

links: One (app, repository) link as the link page and its JSON twin show it: where it is in
    words, its last error, what the app has received, and its attempt log.
    load, detail, link_json, last_skipped

list_params: The list parameters of the original Docora admin API (DOCORA_CONTRACT.md §2),
    parsed one way for every list: page, limit, sort_by, sort_order, search; and the pagination
    it answers.
    ListParams, parse, pagination

metrics_state: The state /metrics reports besides request timings: links by status, the queue,
    running bulk retries and recent delivery attempts.
    database_numbers, queue_numbers

notification_list: The notifications list: failed links, or links in progress (queued, between
    attempts, delivering).
    ListQuery, parse_filter, refuse_unknown, parse_query, list_page, export_rows,
    apps_for_filter

overview: Numbers for the overview and queue pages, and the same numbers as the original Docora
    admin API gives them (DOCORA_CONTRACT.md §2: /overview and /queue).
    queue_stats, queue_contents, app_names, stats, overview_json, queue_json
"""
