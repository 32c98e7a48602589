"""Notices of the bulk panel say the truth about the operation's state and scope, and stay for
as long as it holds (issue 22, point 8): a paused run is called paused on the pages it covers,
the "already running" notice survives the panel's polling, and a second tab that asks to
confirm is shown the running operation instead of a count its reset is changing."""
import re

from tests.test_outcomes import HX


def _poll_url(html):
    return re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_a_paused_run_of_all_apps_is_called_paused_on_an_app_page(client, logged_in, seed):
    app_id = seed.app("Acme")
    seed.failed_links(app_id, 3)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    page = client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert "A bulk retry of all apps is running; it covers this app" in page

    assert logged_in.post(f"/admin/api/retry/pause/{operation_id}").status_code == 200
    page = client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert "A bulk retry of all apps is paused; it covers this app" in page
    assert "is running" not in page


def test_the_already_running_notice_stays_while_the_panel_polls(client, logged_in, seed):
    seed.failed_links(seed.app(), 2)
    first = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    html = logged_in.post("/admin/api/retry/all", headers=HX).get_data(as_text=True)
    assert f'data-operation-id="{first}"' in html and "already running" in html
    for _ in range(2):  # the next polls, as htmx makes them
        url = _poll_url(html)
        assert "note=busy" in url
        html = client.get(url, headers=HX).get_data(as_text=True)
        assert 'id="bulk-notice"' in html and "already running" in html
    # The key is all the URL carries: anything else shows no notice at all.
    html = client.get(f"/admin/api/retry/progress/{first}?note=%3Cb%3Ehi",
                      headers=HX).get_data(as_text=True)
    assert 'id="bulk-notice"' not in html and "hi" not in html.split("bulk-panel-title")[0]


def test_a_second_tab_asking_to_confirm_is_shown_the_running_operation(client, logged_in, seed):
    app_id = seed.app("Acme")
    seed.failed_links(app_id, 4)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    for query in ("", f"?app_id={app_id}"):  # the same scope, and an app the run covers
        html = client.get(f"/admin/api/retry/estimate{query}", headers=HX).get_data(as_text=True)
        assert f'data-operation-id="{operation_id}"' in html
        assert "bulk-confirm-question" not in html and "already running" in html
    assert logged_in.post(f"/admin/api/retry/cancel/{operation_id}").status_code == 200
