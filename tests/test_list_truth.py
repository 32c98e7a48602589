"""The lists' counts and words stay true (issue 22, points 9–11): the In-progress view's App
filter offers the apps that have links in progress, by name even when set from the URL; a row's
retry refreshes the header, the tabs, the panel's button and the selection hint at once; a link
page does not leave "5 failed of 5 allowed" next to a bare "No attempts recorded"."""
import re

from tests.test_outcomes import HX


def _options(html):
    select = html.split('<select name="app_id">')[1].split("</select>")[0]
    return [(value, " ".join(label.split()))
            for value, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)]


def test_the_in_progress_filter_offers_apps_with_links_in_progress(client, logged_in, seed):
    failing = seed.app("Failing App")
    seed.failed_links(failing, 2)
    busy = seed.app("Busy App")
    for _ in range(3):
        seed.link(busy, seed.repo(), status="pending_snapshot")

    html = client.get("/admin/notifications?view=in_progress").get_data(as_text=True)
    assert _options(html) == [("", "All apps"), (busy, "Busy App (3 in progress)")]
    html = client.get("/admin/notifications").get_data(as_text=True)
    assert _options(html) == [("", "All apps"), (failing, "Failing App (2 failed)")]

    # Set from the URL (a link from the app page), an app with none in progress is named.
    html = client.get(f"/admin/notifications?view=in_progress&app_id={failing}").get_data(
        as_text=True)
    assert (failing, "Failing App (0 in progress)") in _options(html)
    assert f'<option value="{failing}" selected>' in html
    html = client.get("/admin/notifications?app_id=app_gone").get_data(as_text=True)
    assert ("app_gone", "app_gone (no such app) (0 failed)") in _options(html)


def test_a_row_retry_refreshes_every_count_on_the_page(client, logged_in, seed):
    app_id = seed.app("Acme")
    links = seed.failed_links(app_id, 3)
    page = client.get("/admin/notifications").get_data(as_text=True)
    assert "retries all 3 matching" in page and "Retry all failed (3)" in page

    response = logged_in.post("/admin/api/retry", headers=HX,
                              data=dict(zip(("app_id", "repository_id"), links[0])))
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "counts-changed"  # at once, not when it resolves

    # What the page's listeners fetch on counts-changed: the head (with the hint out of band)
    # and the idle panel.
    page = client.get("/admin/notifications", headers=HX).get_data(as_text=True)
    head = page.split('id="list-head"')[1].split("</div>")[0]
    assert 'id="failed-total"' in head and ">2</span>" in head
    assert 'id="tab-failed">Failed <span class="tab-count">2</span>' in head
    assert 'id="tab-in-progress">In progress <span class="tab-count">1</span>' in head
    assert 'id="selection-hint"' in page and "retries all 2 matching" in page
    assert 'hx-select-oob="#selection-hint"' in page
    panel = client.get("/admin/bulk-panel", headers=HX).get_data(as_text=True)
    assert "Retry all failed (2)" in panel


def test_a_link_without_logged_attempts_says_why_its_count_has_none(client, logged_in, seed):
    app_id, repository_id = seed.link(seed.app(), seed.repo(), retry_count=5)
    html = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "5 failed of 5 allowed" in html
    empty = html.split('id="no-attempts"')[1].split("</section>")[0]
    assert "The 5 failed attempts counted above were made before attempts were logged" in empty
    assert "more than 30 days ago" in empty

    app_id, repository_id = seed.link(seed.app(), seed.repo(), status="synced", retry_count=0)
    html = client.get(f"/admin/apps/{app_id}/links/{repository_id}").get_data(as_text=True)
    assert "No attempt is in the log" in html.split('id="no-attempts"')[1]
