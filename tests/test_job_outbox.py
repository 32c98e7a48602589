"""The job outbox (issue 23): a statement that makes links due leaves a mark with them until
their jobs are pushed; the sweeper pushes the links of a mark left behind again at once, with
no regard to the queue's order (services/jobs/sweeper.push_unpushed)."""
from docora_admin import db
from docora_admin.services.jobs import job_queue, sweeper
from docora_admin.services.retries import bulk_runner
from docora_admin.services.retries.bulk_runner import Chunks


def _marks():
    with db.connection() as conn:
        return conn.execute("SELECT id, app_ids, repository_ids, created_at FROM job_outbox "
                            "ORDER BY id").fetchall()


def _age_marks(seconds):
    with db.connection() as conn:
        conn.execute("UPDATE job_outbox SET created_at = created_at - make_interval(secs => %s)",
                     (seconds,))


def test_a_pushed_retry_leaves_no_mark(client, logged_in, seed, empty_queue):
    app_id, repository_id = seed.link(seed.app(), seed.repo())
    assert logged_in.post("/admin/api/retry", json={
        "app_id": app_id, "repository_id": repository_id}).status_code == 200
    assert empty_queue.pending_count() == 1 and _marks() == []


def test_a_chunk_whose_push_never_came_is_pushed_again_at_once(client, logged_in, seed,
                                                               empty_queue):
    app_id = seed.app()
    links = seed.failed_links(app_id, 3)
    operation_id = logged_in.post("/admin/api/retry/all").get_json()["data"]["operation_id"]
    empty_queue.flush()  # the run task: the chunk is reset here, and its push "dies"
    with db.autocommit_connection() as conn:
        rows, _stamp, mark = Chunks(conn, operation_id).reset_next()
    assert len(rows) == 3 and mark is not None
    [noted] = _marks()
    assert sorted(zip(noted["app_ids"], noted["repository_ids"])) == sorted(links)

    assert sweeper.push_unpushed() == 0  # a push may still be on its way: not yet
    assert empty_queue.pending_count() == 0
    _age_marks(sweeper.PUSH_GRACE_S + 1)
    # Jobs of other links are waiting ahead (a backlog): the lost-job sweep would wait for
    # them, the outbox does not.
    other = seed.link(seed.app(), seed.repo(), status="pending_snapshot")
    job_queue.push_snapshot_jobs([(*other, None, 0)], 1)
    assert sweeper.push_unpushed() == 3
    assert empty_queue.pending_count() == 1 + 3 and _marks() == []
    assert bulk_runner.run_one_chunk(operation_id) is None  # nothing left to reset


def test_only_links_still_waiting_are_pushed_and_a_back_off_keeps_its_time(app, seed,
                                                                            empty_queue):
    app_id = seed.app()
    waiting = seed.link(app_id, seed.repo(), status="pending_snapshot")
    later = seed.link(app_id, seed.repo(), status="pending_snapshot")
    delivered = seed.link(app_id, seed.repo(), status="synced")
    with db.connection() as conn:
        conn.execute("UPDATE app_repositories SET next_attempt_at = now() + interval '1 hour' "
                     "WHERE app_id = %s AND repository_id = %s", later)
        job_queue.note(conn, None, [waiting, later, delivered])
    _age_marks(sweeper.PUSH_GRACE_S + 1)
    assert sweeper.push_unpushed() == 2
    assert empty_queue.pending_count() == 1  # the waiting one now
    assert empty_queue.scheduled_count() == 1  # the back-off at its time
    assert _marks() == []


def test_the_sweep_pushes_unpushed_marks_first(app, seed, empty_queue):
    link = seed.link(seed.app(), seed.repo(), status="pending_snapshot")
    with db.connection() as conn:
        job_queue.note(conn, None, [link])
    _age_marks(sweeper.PUSH_GRACE_S + 1)
    assert sweeper.sweep()["unpushed"] == 1
