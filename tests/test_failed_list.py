"""The failed-notifications page and its JSON twin."""


def _failed(client, **params):
    response = client.get("/admin/api/notifications/failed", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]  # {data: {data, pagination}}, as the original answers


def test_lists_only_failed_newest_first_with_pagination(client, logged_in, seed):
    app_id = seed.app("Acme")
    seed.failed_links(app_id, 25)  # age 0..24 minutes: index = age
    seed.link(app_id, seed.repo(), status="synced")
    body = _failed(client, limit=10, page=1, sort_by="updated_at")
    assert body["pagination"] == {"page": 1, "limit": 10, "total": 25, "total_pages": 3}
    ages = [row["updated_at"] for row in body["data"]]
    assert ages == sorted(ages, reverse=True)
    assert {row["status"] for row in body["data"]} == {"failed"}
    last = _failed(client, limit=10, page=3)
    assert len(last["data"]) == 5
    seen = {r["repository_id"] for p in (1, 2, 3) for r in _failed(client, limit=10, page=p)["data"]}
    assert len(seen) == 25


def test_sort_by_whitelist_and_order(client, logged_in, seed):
    for name, retries in (("Bravo", 2), ("Alpha", 5), ("Charlie", 1)):
        seed.link(seed.app(name), seed.repo(), retry_count=retries)
    names = [r["app_name"] for r in _failed(client, sort_by="app_name", sort_order="asc")["data"]]
    assert names == ["Alpha", "Bravo", "Charlie"]
    counts = [r["retry_count"] for r in _failed(client, sort_by="retry_count")["data"]]
    assert counts == [5, 2, 1]
    bad = client.get("/admin/api/notifications/failed?sort_by=password")
    assert bad.status_code == 400
    assert bad.get_json() == {"error": "Invalid sort_by: password"}


def test_search_matches_app_repository_and_error(client, logged_in, seed):
    acme, globex = seed.app("Acme Docs"), seed.app("Globex")
    seed.link(acme, seed.repo("acme", "handbook"), last_error="timeout after 30 s")
    seed.link(globex, seed.repo("globex", "website"), last_error="POST /create → HTTP 500")
    seed.link(globex, seed.repo("initech", "runbooks"), last_error="connection refused")

    def found(term):
        return sorted(r["repository"] for r in _failed(client, search=term)["data"])

    assert found("acme docs") == ["acme/handbook"]
    assert found("globex/web") == ["globex/website"]
    assert found("REFUSED") == ["initech/runbooks"]
    assert found("100%") == []  # LIKE wildcards are literal


def test_app_filter(client, logged_in, seed):
    acme, globex = seed.app("Acme"), seed.app("Globex")
    seed.failed_links(acme, 3)
    seed.failed_links(globex, 2)
    body = _failed(client, app_id=globex)
    assert body["pagination"]["total"] == 2
    assert {r["app_id"] for r in body["data"]} == {globex}


def test_page_limit_and_order_fall_back_as_the_original_does(client, logged_in, seed):
    """DOCORA_CONTRACT.md §2: a page below 1 or not a number is 1, a limit not offered is 20,
    a sort_order other than asc/desc is the list's default; the page reads them the same."""
    seed.failed_links(seed.app("Acme"), 3)
    for params, page, limit in (({"page": "x"}, 1, 20), ({"page": "0"}, 1, 20),
                                ({"limit": "7"}, 1, 20), ({"limit": "-1"}, 1, 20),
                                ({"limit": "5", "page": "-3"}, 1, 5),
                                ({"sort_order": "sideways"}, 1, 20)):
        body = _failed(client, **params)
        assert (body["pagination"]["page"], body["pagination"]["limit"]) == (page, limit)
        assert len(body["data"]) == 3
        assert client.get("/admin/notifications", query_string=params).status_code == 200


def test_bad_filters_are_400_not_500(client, logged_in):
    for params in ({"search": "a" * 500}, {"app_id": "x" * 80}, {"sort_by": "password"},
                   {"failed_since": "yesterday"}):
        response = client.get("/admin/api/notifications/failed", query_string=params)
        assert response.status_code == 400, params
        assert set(response.get_json()) == {"error"}
        page = client.get("/admin/notifications", query_string=params)
        assert page.status_code == 400, params


def test_rows_carry_the_original_fields(client, logged_in, seed):
    app_id = seed.app("Acme")
    repository_id = seed.repo("acme", "handbook")
    seed.link(app_id, repository_id, last_error=None)
    [row] = _failed(client)["data"]
    assert {k: row[k] for k in ("app_id", "app_name", "repository_id", "repository_name",
                                "error_message", "retry_count")} == {
        "app_id": app_id, "app_name": "Acme", "repository_id": repository_id,
        "repository_name": "acme/handbook", "error_message": "Unknown error", "retry_count": 5}
    assert row["github_url"].startswith("https://github.com/acme/handbook")
    assert row["timestamp"].endswith("Z") and row["last_scanned_at"] is None
    for key in ("app_name", "repository_name", "retry_count", "last_scanned_at"):
        assert _failed(client, sort_by=key, limit=5)["pagination"]["limit"] == 5


def test_error_text_is_escaped_on_the_page(client, logged_in, seed):
    seed.link(seed.app("<b>Evil app</b>"), seed.repo(), last_error="<script>alert(1)</script>")
    html = client.get("/admin/notifications").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Evil app</b>" not in html


def test_page_filters_paginates_and_shows_empty_state(client, logged_in, seed):
    assert "All notifications delivered" in client.get("/admin/notifications").get_data(
        as_text=True)
    app_id = seed.app("Acme")
    seed.failed_links(app_id, 12)
    html = client.get("/admin/notifications?limit=10&page=2").get_data(as_text=True)
    assert html.count('class="failed-row"') == 2
    assert "Page 2 of 2" in html


def test_overview_counts(client, logged_in, seed):
    app_id = seed.app("Acme")
    seed.failed_links(app_id, 3)
    seed.link(app_id, seed.repo(), status="synced")
    html = client.get("/admin/").get_data(as_text=True)
    assert 'id="stat-failed"><span class="stat-value">3</span>' in html


def test_apps_pages(client, logged_in, seed):
    app_id = seed.app("Acme <Docs>")
    seed.failed_links(app_id, 2)
    listing = client.get("/admin/apps").get_data(as_text=True)
    assert "Acme &lt;Docs&gt;" in listing
    detail = client.get(f"/admin/apps/{app_id}")
    assert detail.status_code == 200
    assert detail.get_data(as_text=True).count('class="badge badge-failed"') == 2
    assert client.get("/admin/apps/app_unknown").status_code == 404


def _in_progress(client, **params):
    response = client.get("/admin/api/notifications/in-progress", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]


def test_in_progress_view_filters_searches_and_sorts(client, logged_in, seed):
    acme, globex = seed.app("Acme Docs"), seed.app("Globex")
    seed.link(acme, seed.repo("acme", "handbook"), status="pending_snapshot", retry_count=0)
    seed.link(globex, seed.repo("globex", "website"), status="scanning", retry_count=2)
    waiting = seed.link(globex, seed.repo("initech", "runbooks"), status="pending_snapshot",
                        retry_count=1)
    from docora_admin import db
    with db.connection() as conn:  # between attempts: an error and a next attempt time
        conn.execute("UPDATE app_repositories SET last_error = 'timeout after 30 s', "
                     "next_attempt_at = now() + interval '5 min' WHERE repository_id = %s",
                     (waiting[1],))
    seed.failed_links(acme, 2)  # not in progress

    def repositories(**params):
        return [r["repository"] for r in _in_progress(client, **params)["data"]]

    assert sorted(repositories()) == ["acme/handbook", "globex/website", "initech/runbooks"]
    assert repositories(search="acme docs") == ["acme/handbook"]  # app name
    assert repositories(search="globex/web") == ["globex/website"]  # repository
    assert repositories(search="TIMEOUT") == ["initech/runbooks"]  # error text
    assert repositories(search="%") == []  # literal, not a wildcard
    assert sorted(repositories(app_id=globex)) == ["globex/website", "initech/runbooks"]
    assert repositories(sort_by="retry_count", sort_order="desc")[0] == "globex/website"
    names = [r["app_name"] for r in _in_progress(client, sort_by="app_name")["data"]]
    assert names == sorted(names)
    body = _in_progress(client, search="runbooks")
    assert body["counts"] == {"failed": None, "in_progress": 1}  # no second search per page
    [row] = body["data"]
    assert row["state"] == "retrying" and row["next_attempt_at"]
    assert row["state_text"].startswith("Retrying — attempt 1 of 5 failed, next attempt at ")
    assert _in_progress(client)["counts"] == {"failed": 2, "in_progress": 3}
    bad = client.get("/admin/api/notifications/in-progress?sort_by=updated_at")
    assert bad.status_code == 200  # the failed list's default maps to next attempt
    bad = client.get("/admin/api/notifications/in-progress?sort_by=password")
    assert bad.status_code == 400 and bad.get_json() == {"error": "Invalid sort_by: password"}
