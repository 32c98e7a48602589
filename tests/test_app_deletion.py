"""Deleting an app (DOCORA_CONTRACT.md §2 `DELETE /admin/api/apps/:appId`, and the app page's
confirm dialog): what goes, what stays, the checkout of an orphaned repository, a running
operation of the app, roles, the typed name, 404s."""
import pytest

from docora_admin import db
from docora_admin.services.delivery import git_fetch
from tests.accounts_helpers import client_as
from tests.test_outcomes import linked, receivers, repo, run_queue  # noqa: F401

pytestmark = pytest.mark.usefixtures("empty_queue")

HX = {"HX-Request": "true", "HX-Target": "app-delete-form"}


def _count(sql, params):
    with db.connection() as conn:
        return conn.execute(sql, params).fetchone()["n"]


def _delivered_app(seed, receivers, repo, logged_in, count=2):
    """An app whose `count` links were delivered (files recorded, attempts logged, clones
    made)."""
    receiver = receivers(200)
    app_id, links = linked(seed, receiver, repo, count=count, name="Doomed App")
    for _, repository_id in links:
        assert logged_in.post("/admin/api/retry", json={
            "app_id": app_id, "repository_id": repository_id}).status_code == 200
    run_queue()
    assert all(seed.link_status(*link)["status"] == "synced" for link in links)
    return app_id, [repository_id for _, repository_id in links]


def test_deletion_removes_the_app_and_what_is_only_its(client, logged_in, seed, receivers,
                                                       repo):
    app_id, repository_ids = _delivered_app(seed, receivers, repo, logged_in)
    other = seed.app("Other App")
    shared = repository_ids[0]
    seed.link(other, shared, status="synced")
    checkouts = {r: git_fetch.checkout_path(r) for r in repository_ids}
    assert all(path.is_dir() for path in checkouts.values())
    assert _count("SELECT count(*) AS n FROM app_delivered_files WHERE app_id = %s",
                  (app_id,)) == 4
    assert _count("SELECT count(*) AS n FROM delivery_attempts WHERE app_id = %s",
                  (app_id,)) == 2

    response = client.delete(f"/admin/api/apps/{app_id}", headers={"Origin": "http://localhost"})
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()["data"]
    assert {k: data[k] for k in ("deleted", "repositories_unlinked",
                                 "orphaned_repositories_cleaned")} == {
        "deleted": True, "repositories_unlinked": 2, "orphaned_repositories_cleaned": 1}
    assert (data["files_forgotten"], data["attempts_deleted"], data["checkouts_removed"]) == (
        4, 2, 1)
    for table in ("apps", "app_repositories", "app_delivered_files", "delivery_attempts"):
        assert _count(f"SELECT count(*) AS n FROM {table} WHERE app_id = %s", (app_id,)) == 0
    # The repository another app follows stays, with its link and its checkout.
    assert seed.link_status(other, shared)["status"] == "synced"
    assert checkouts[shared].is_dir()
    orphan = repository_ids[1]
    assert _count("SELECT count(*) AS n FROM repositories WHERE repository_id = %s",
                  (orphan,)) == 0
    assert _count("SELECT count(*) AS n FROM repository_snapshots WHERE repository_id = %s",
                  (orphan,)) == 0
    assert not checkouts[orphan].exists()
    with db.connection() as conn:
        event = conn.execute("SELECT actor, target, details FROM audit_events "
                             "WHERE action = 'app.delete'").fetchone()
    assert (event["actor"], event["target"]) == ("admin", app_id)
    assert event["details"]["app_name"] == "Doomed App"
    assert event["details"]["orphaned_repositories"] == [orphan]
    # Gone: 404 for it everywhere, and a second deletion.
    assert client.get(f"/admin/api/apps/{app_id}").status_code == 404
    again = logged_in.delete(f"/admin/api/apps/{app_id}")
    assert (again.status_code, again.get_json()) == (404, {"error": "App not found"})
    assert client.get(f"/admin/apps/{app_id}").status_code == 404
    assert "Doomed App" not in client.get("/admin/apps").get_data(as_text=True)


@pytest.mark.parametrize("app_id", ["app_000000000000000000000000", "x" * 80])
def test_deleting_an_unknown_app_is_404(client, logged_in, app_id):
    response = logged_in.delete(f"/admin/api/apps/{app_id}")
    assert (response.status_code, response.get_json()) == (404, {"error": "App not found"})


def test_deletion_ends_the_apps_running_operation(client, logged_in, seed):
    app_id = seed.app("Busy App")
    seed.failed_links(app_id, 3)
    other = seed.app()
    seed.failed_links(other, 2)
    started = logged_in.post(f"/admin/api/retry/app/{app_id}").get_json()["data"]
    operation_id = started["operation_id"]
    data = logged_in.delete(f"/admin/api/apps/{app_id}").get_json()["data"]
    assert data["operations_ended"] == [operation_id]
    progress = client.get(f"/admin/api/retry/progress/{operation_id}").get_json()["data"]
    assert (progress["status"], progress["cancelled"]) == ("cancelled", True)
    assert progress["error"] == "The app was deleted"
    run_queue()  # its task finds it ended: nothing of the deleted app comes back
    assert _count("SELECT count(*) AS n FROM app_repositories WHERE app_id = %s",
                  (app_id,)) == 0
    # Another app's links were not touched, and a retry of everything goes on.
    assert _count("SELECT count(*) AS n FROM app_repositories WHERE app_id = %s "
                  "AND status = 'failed'", (other,)) == 2
    assert logged_in.post("/admin/api/retry/all").status_code == 200


def test_the_dialog_needs_the_apps_name_typed(client, logged_in, seed):
    app_id = seed.app("Acme Docs")
    seed.link(app_id, seed.repo(), status="synced")
    page = client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert 'id="app-delete-dialog"' in page and 'data-must-match="Acme Docs"' in page
    wrong = logged_in.delete(f"/admin/api/apps/{app_id}?confirm_name=Acme", headers=HX)
    assert wrong.status_code == 400
    assert wrong.headers["HX-Retarget"] == "#app-delete-form-error"
    assert "Type the app&#39;s name exactly" in wrong.get_data(as_text=True)
    missing = logged_in.delete(f"/admin/api/apps/{app_id}", headers=HX)
    assert missing.status_code == 400
    assert _count("SELECT count(*) AS n FROM app_repositories WHERE app_id = %s", (app_id,)) == 1
    done = logged_in.delete(f"/admin/api/apps/{app_id}?confirm_name=%20Acme%20Docs%20",
                            headers=HX)
    assert (done.status_code, done.headers["HX-Redirect"]) == (204, "/admin/apps")
    listing = client.get("/admin/apps").get_data(as_text=True)
    assert "Acme Docs deleted with its 1 repository link; 1 repository no other app followed " \
           "removed too." in listing


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_admin_deletes_an_app(app, seed, role):
    app_id = seed.app("Kept App")
    actions, _ = client_as(app, role)
    response = actions.delete(f"/admin/api/apps/{app_id}")
    assert response.status_code == 403
    assert response.get_json() == {
        "error": f"Your role ({role}) cannot delete apps: that needs the admin role"}
    page = actions._client.get(f"/admin/apps/{app_id}").get_data(as_text=True)
    assert "app-delete-open" not in page
    assert _count("SELECT count(*) AS n FROM apps WHERE app_id = %s", (app_id,)) == 1


def test_a_cross_site_deletion_is_refused(client, logged_in, seed):
    app_id = seed.app()
    response = client.delete(f"/admin/api/apps/{app_id}",
                             headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert _count("SELECT count(*) AS n FROM apps WHERE app_id = %s", (app_id,)) == 1


def test_each_machine_sweeps_its_checkouts_of_repositories_gone(seed, tmp_path, monkeypatch):
    """Another machine's checkout of a deleted app's repository (the deletion removed only the
    web's machine's): that machine's watchdog sweep removes it, and only it."""
    from docora_admin.services.apps import app_deletion

    monkeypatch.setenv("DOCORA_GIT_CACHE", str(tmp_path / "other-machine"))
    kept = seed.repo()
    for repository_id in (kept, "repo_deleted_long_ago"):
        (git_fetch.checkout_path(repository_id) / ".git").mkdir(parents=True)
    unrelated = git_fetch.cache_root() / "not-a-checkout"
    unrelated.mkdir()
    assert app_deletion.remove_orphaned_checkouts() == 1
    assert git_fetch.checkout_path(kept).is_dir() and unrelated.is_dir()
    assert not git_fetch.checkout_path("repo_deleted_long_ago").exists()
    assert app_deletion.remove_orphaned_checkouts() == 0
