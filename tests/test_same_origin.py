"""State-changing requests a browser marks as cross-site are refused, even with a valid token."""
import pytest

from docora_admin.same_origin import CROSS_SITE_MESSAGE

pytestmark = pytest.mark.usefixtures("empty_queue")


def _retry(logged_in, seed, headers):
    app_id, repository_id = seed.link(seed.app(), seed.repo())
    response = logged_in.post("/admin/api/retry", headers=headers,
                              json={"app_id": app_id, "repository_id": repository_id})
    return response, seed.link_status(app_id, repository_id)["status"]


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another site for us
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    {"Origin": "https://evil.example"},
    {"Origin": "http://localhost.evil.example"},
    {"Origin": "https://localhost"},  # another scheme is another origin
    {"Origin": "http://localhost:8080"},
    {"Origin": "null"},
])
def test_cross_site_post_with_valid_token_is_403(logged_in, seed, headers):
    response, status = _retry(logged_in, seed, headers)
    assert response.status_code == 403
    assert response.get_json() == {"error": CROSS_SITE_MESSAGE}
    assert status == "failed"


@pytest.mark.parametrize("headers", [
    {},  # scripts and test clients send neither header: the CSRF token decides
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},
    {"Origin": "http://localhost"},
    {"Origin": "http://LOCALHOST:80"},
])
def test_same_origin_post_passes(logged_in, seed, headers):
    response, status = _retry(logged_in, seed, headers)
    assert response.status_code == 200, response.get_json()
    assert status == "pending_snapshot"


@pytest.mark.parametrize("headers,body", [
    ({"Sec-Fetch-Site": "same-origin"}, "form"),
    ({"Origin": "http://localhost"}, "form"),
    ({"Sec-Fetch-Site": "same-origin", "HX-Request": "true"}, "json"),
    ({"Sec-Fetch-Site": "none"}, "json"),  # typed or bookmarked: no page sent it
    ({}, "json"),  # scripts: neither header, the token decides
])
def test_same_origin_still_needs_the_csrf_token(client, logged_in, seed, headers, body):
    """Only same-origin JSON goes without a token (DOCORA_CONTRACT.md §2; see
    tests/test_admin_api_contract.py); forms, htmx and anything unmarked keep it."""
    app_id, repository_id = seed.link(seed.app(), seed.repo())
    fields = {"app_id": app_id, "repository_id": repository_id}
    kwargs = {"json": fields} if body == "json" else {"data": fields}
    response = client.post("/admin/api/retry", headers=headers, **kwargs)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert seed.link_status(app_id, repository_id)["status"] == "failed"


def test_cross_site_page_and_fragment_answers(client, logged_in):
    page = client.post("/admin/logout", data={"csrf_token": logged_in.csrf_token},
                       headers={"Origin": "https://evil.example"})
    assert page.status_code == 403
    assert "Cross-site request refused" in page.get_data(as_text=True)
    fragment = logged_in.post("/admin/api/retry/all", headers={
        "Sec-Fetch-Site": "cross-site", "HX-Request": "true", "HX-Target": "bulk-panel"})
    assert fragment.status_code == 403
    assert fragment.headers["HX-Retarget"] == "#bulk-panel-error"
    assert client.get("/admin/api/session").status_code == 200  # still logged in


def test_cross_site_get_is_allowed(client, logged_in):
    """A link from elsewhere (an alert e-mail, a chat) must still open the console."""
    response = client.get("/admin/notifications", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
