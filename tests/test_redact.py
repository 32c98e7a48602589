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
    # Issue 24 L3: a password with an unencoded "/".
    ("fatal: https://u:ab/cd@host/x failed", "fatal: https://***@host/x failed"),
    ("clone 'https://bot:a/b@c@git.example.com/r.git'", "clone 'https://***@git.example.com/r.git'"),
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


def test_credentials_written_by_someone_else_are_not_shown_or_exported(client, logged_in, seed):
    """Issue 24 L2: an error another component stored as it was (not scrubbed when written) is
    scrubbed whenever it is read: pages, fragments, the JSON API, CSV and JSON Lines."""
    secret = "ghp_0123456789abcdef"
    app_id, repository_id = seed.link(
        seed.app("Acme"), seed.repo(),
        last_error=f"fatal: unable to access 'https://u:{secret}@github.com/x/': 403")
    for path in ["/admin/notifications", f"/admin/apps/{app_id}",
                 f"/admin/apps/{app_id}/links/{repository_id}",
                 "/admin/api/notifications/failed", "/admin/api/notifications/failed.csv",
                 "/admin/api/notifications/failed.jsonl", f"/admin/api/apps/{app_id}"]:
        response = client.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert secret not in body, path
    assert "https://***@github.com/x/" in client.get("/admin/notifications").get_data(
        as_text=True)
