"""Exports of the notifications lists: CSV and its JSON Lines twin, for the current filter and
sort, formula-leading cells defused, streamed through a server-side cursor."""
import csv
import io
import json

import psycopg

from docora_admin import export_format
from tests.conftest import TEST_DATABASE_URL


def _csv(response):
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_csv_follows_the_filter_and_sort(logged_in, client, seed):
    wanted = seed.app(name="Wanted")
    other = seed.app(name="Other")
    seed.failed_links(wanted, 3)
    seed.failed_links(other, 2)
    seed.link(wanted, seed.repo(), status="synced")
    response = client.get(f"/admin/api/notifications/failed.csv?app_id={wanted}"
                          "&sort_by=updated_at&sort_order=asc")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="docora-failed-')
    rows = _csv(response)
    assert len(rows) == 3 and {row["app_id"] for row in rows} == {wanted}
    assert [row["updated_at"] for row in rows] == sorted(row["updated_at"] for row in rows)
    assert rows[0]["state"] == "failed" and rows[0]["retry_count"] == "5"


def test_formula_leading_cells_are_defused(logged_in, client, seed):
    app_id = seed.app(name="=HYPERLINK(\"http://evil.example\",\"x\")")
    seed.link(app_id, seed.repo(owner="@owner", name="repo"), last_error="+cmd|' /C calc'!A0")
    seed.link(app_id, seed.repo(), last_error="-2+3")
    seed.link(app_id, seed.repo(), last_error="\t=1+1")
    rows = _csv(client.get("/admin/api/notifications/failed.csv"))
    assert {row["app_name"] for row in rows} == {"'=HYPERLINK(\"http://evil.example\",\"x\")"}
    errors = {row["last_error"] for row in rows}
    assert errors == {"'+cmd|' /C calc'!A0", "'-2+3", "'\t=1+1"}
    assert {row["repository"][:2] for row in rows} >= {"'@"}
    # The JSON Lines twin carries the values as they are: JSON is not a spreadsheet.
    lines = client.get("/admin/api/notifications/failed.jsonl").get_data(as_text=True)
    records = [json.loads(line) for line in lines.splitlines()]
    assert {r["last_error"] for r in records} == {"+cmd|' /C calc'!A0", "-2+3", "\t=1+1"}


def test_defuse_leaves_other_values_alone():
    assert export_format.defuse("plain") == "plain"
    assert export_format.defuse(5) == 5
    assert export_format.defuse(None) == ""
    assert export_format.defuse("a=b") == "a=b"
    assert export_format.defuse("\r=x") == "'\r=x"


def test_in_progress_jsonl_and_empty_export(logged_in, client, seed):
    app_id = seed.app()
    seed.link(app_id, seed.repo(), status="pending_snapshot", retry_count=0)
    seed.failed_links(app_id, 2)
    response = client.get("/admin/api/notifications/in-progress.jsonl")
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    records = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [r["status"] for r in records] == ["pending_snapshot"]
    empty = client.get(f"/admin/api/notifications/failed.csv?search=nothing-matches-this")
    assert empty.status_code == 200
    assert empty.get_data(as_text=True).splitlines() == [",".join(
        ["app_id", "app_name", "repository_id", "repository", "github_url", "status", "state",
         "state_text", "last_error", "retry_count", "updated_at", "next_attempt_at"])]


def test_bad_or_unknown_parameters_are_refused(logged_in, client):
    response = client.get("/admin/api/notifications/failed.csv?q=x")
    assert response.status_code == 400
    assert "unknown query parameter 'q'" in response.get_json()["error"]
    assert "accepted: sort_by" in response.get_json()["error"]
    response = client.get("/admin/api/notifications/failed.csv?page=2")
    assert response.status_code == 400  # an export has no pages
    assert client.get("/admin/api/notifications/failed.csv?sort_by=x").status_code == 400
    assert client.get("/admin/api/notifications/failed.xlsx").status_code == 404


def test_anonymous_gets_401(client):
    assert client.get("/admin/api/notifications/failed.csv").status_code == 401


def test_streamed_through_a_server_side_cursor(logged_in, client, seed):
    """Mid-download, the database is being read a batch at a time (FETCH from a named cursor),
    not all at once: the response is an iterator, not a body in memory."""
    app_id = seed.app()
    seed.failed_links(app_id, 5)
    response = client.get("/admin/api/notifications/failed.csv", buffered=False)
    assert response.is_streamed
    chunks = iter(response.response)
    assert next(chunks).startswith(b"app_id,")
    with psycopg.connect(TEST_DATABASE_URL) as conn:
        queries = [row[0] for row in conn.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")]
    assert any(q.startswith("FETCH FORWARD") or "DECLARE" in q for q in queries), queries
    assert len(list(chunks)) == 5
    response.close()
