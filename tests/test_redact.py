"""Credentials in repository URLs never leave the server."""
import pytest

from docora_admin.redact import scrub


@pytest.mark.no_services
@pytest.mark.parametrize("text,expected", [
    ("https://user:token@github.com/o/r", "https://***@github.com/o/r"),
    ("https://x-access-token:ghp_abc@github.com/o/r.git", "https://***@github.com/o/r.git"),
    # An unencoded "@" inside the password is removed with the rest of it.
    ("https://user:p@ss@github.com/o/r", "https://***@github.com/o/r"),
    ("fatal: unable to access 'https://u:t@example.com/x/': 403",
     "fatal: unable to access 'https://***@example.com/x/': 403"),
    ("https://github.com/o/r", "https://github.com/o/r"),
    ("https://github.com/o/r@v1", "https://github.com/o/r@v1"),  # "@" in the path stays
    ("file:///srv/repos/r", "file:///srv/repos/r"),
    ("git@github.com:o/r.git", "git@github.com:o/r.git"),
])
def test_scrub_removes_userinfo_only(text, expected):
    assert scrub(text) == expected


def test_failed_notifications_json_has_no_credentials(client, logged_in, seed):
    repository_id = seed.repo("acme", "private",
                              url="https://deploy:ghp_secret@github.com/acme/private")
    seed.link(seed.app("Acme"), repository_id)
    response = client.get("/admin/api/notifications/failed")
    assert response.status_code == 200
    [row] = response.get_json()["data"]["data"]
    assert row["github_url"] == "https://***@github.com/acme/private"
    assert "ghp_secret" not in response.get_data(as_text=True)
