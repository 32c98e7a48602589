"""Alerts (services/alerts/): every kind recorded once per state change and delivered once to a
local webhook, e-mail through a local SMTP server, no storm under a flapping circuit, retries
with backoff, the settings' validation, the Alerts page and its JSON twins."""
import dataclasses

import pytest

from docora_admin import config, db, runtime
from docora_admin.alert_settings import AlertSettings
from docora_admin.services.alerts import changes, sending
from docora_admin.services.console import metrics_state
from docora_admin.services.control import delivery_control, repository_circuit
from docora_admin.services.retries import outcomes
from tests.accounts_helpers import client_as
from tests.alert_receivers import AlertWebhook, SmtpServer, self_signed_certificate
from tests.conftest import TEST_ENV
from tests.test_outcomes import linked, receivers, repo, run_queue, run_scheduled  # noqa: F401

THRESHOLD = 3
HX = {"HX-Request": "true"}


@pytest.fixture
def webhook():
    hook = AlertWebhook()
    yield hook
    hook.close()


def _use(monkeypatch, max_retry_attempts=5, **alerts):
    settings = dataclasses.replace(
        runtime.settings(), delivery_timeout_s=2, max_retry_attempts=max_retry_attempts, circuit_failure_threshold=THRESHOLD,
        circuit_probe_seconds=30, app_rate_per_second=0, app_max_concurrency=0,
        repository_failure_threshold=2, alerts=AlertSettings(**alerts))
    monkeypatch.setattr(runtime, "_settings", settings)
    return settings


@pytest.fixture(autouse=True)
def no_alerts_yet(request, tmp_path, monkeypatch):
    if "no_services" in request.keywords:
        return
    request.getfixturevalue("empty_queue")
    monkeypatch.setenv("DOCORA_GIT_CACHE", str(tmp_path / "cache"))
    with db.connection() as conn:
        conn.execute("TRUNCATE alerts, alert_deliveries, alert_attempts CASCADE")
        conn.execute("UPDATE alert_rules SET firing = false, episode = 0")
    _use(monkeypatch, failed_rise_count=0)


def _alerts():
    with db.connection() as conn:
        return conn.execute("""
            SELECT a.id, a.kind, a.state, a.folded_count, d.channel, d.status, d.attempts,
                   d.last_error
            FROM alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.id ORDER BY a.id
        """).fetchall()


def _time_passes():
    """The cool-downs and backoffs are over."""
    with db.connection() as conn:
        conn.execute("UPDATE alerts SET due_at = now() WHERE due_at > now()")
        conn.execute("UPDATE alert_deliveries SET next_attempt_at = now() "
                     "WHERE status = 'pending'")


def _open_and_close(app_id, times):
    """The app's circuit opens (THRESHOLD failures) and is closed by an operator, `times`
    times: the real service functions, each change in its own transaction."""
    for _ in range(times):
        for _ in range(THRESHOLD):
            with db.connection() as conn:
                delivery_control.record_failed(conn, app_id, "HTTP 503 <b>down</b>")
        delivery_control.close_circuit(app_id)


def test_every_kind_is_delivered_once(client, logged_in, seed, repo, receivers, webhook,
                                      monkeypatch):
    _use(monkeypatch, webhook_url=webhook.url, cooldown_minutes=0, failed_rise_count=2,
         failed_rise_minutes=15, max_retry_attempts=1)
    # A bulk retry half of whose links fail again: the failing app's circuit opens on the way
    # (THRESHOLD failures in a row) and the operation settles with failures.
    good, bad = receivers(200), receivers(500)
    linked(seed, good, repo, count=3, name="Good App")
    bad_app, _ = linked(seed, bad, repo, count=3, name="Broken App")
    assert logged_in.post("/admin/api/retry/all").status_code == 200
    run_queue()
    outcomes.settle_all()
    # The operator closes the circuit.
    assert logged_in.post(f"/admin/api/apps/{bad_app}/circuit/close").status_code == 200
    # A repository's git circuit opens (REPOSITORY_FAILURE_THRESHOLD 2).
    repository_id = seed.repo()
    for _ in range(2):
        with db.connection() as conn:
            repository_circuit.record_git_failure(conn, repository_id, "git: not found")
    # Its next fetch goes through: the circuit closes.
    repository_circuit.record_success(repository_id)
    # Three links entered failed just now: more than ALERT_FAILED_RISE_COUNT (2).
    sending.tick()
    sending.tick()  # still firing: no second alert
    sent = logged_in.post("/admin/api/alerts/test")
    assert sent.status_code == 201 and sent.get_json()["data"]["kind"] == "test"

    run_queue()  # the test alert's sender
    sending.send_due()
    assert sorted(webhook.kinds()) == sorted([
        "app_circuit_open", "app_circuit_closed", "operation_failures",
        "repository_circuit_open", "repository_circuit_closed", "failed_rise", "test"])
    # The same changes seen again (another worker, a second settle) record nothing new.
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM bulk_operations").fetchone()
        assert changes.operation_settled(conn, row) is None
    outcomes.settle_all()
    sending.tick()
    _time_passes()
    sending.send_due()
    assert len(webhook.bodies) == 7
    assert {(a["status"], a["attempts"]) for a in _alerts()} == {("sent", 1)}

    by_kind = {body["kind"]: body for body in webhook.bodies}
    opened = by_kind["app_circuit_open"]
    assert opened["subject"] == f"app:{bad_app}" and opened["state"] == "open"
    assert opened["facts"]["app_name"] == "Broken App" and opened["at"]
    assert "Broken App" in opened["text"] and opened["console_url"] is None
    assert "closed by admin" in by_kind["app_circuit_closed"]["text"]
    closed = by_kind["repository_circuit_closed"]
    assert closed["subject"] == f"repository:{repository_id}" and closed["state"] == "closed"
    assert "a git fetch went through" in closed["text"]
    assert by_kind["operation_failures"]["facts"]["failed_again"] == 3
    assert by_kind["failed_rise"]["facts"]["entered_failed"] == 3
    numbers = metrics_state.database_numbers()
    assert numbers["alert_deliveries"][("webhook", "sent")] == 7
    assert numbers["alert_attempts"][("webhook", "sent")] == 7


def test_a_delivery_that_goes_through_closes_the_circuit_with_one_alert(
        client, logged_in, seed, repo, receivers, webhook, monkeypatch):
    _use(monkeypatch, webhook_url=webhook.url, cooldown_minutes=0, failed_rise_count=0)
    receiver = receivers(500)
    app_id, _ = linked(seed, receiver, repo, count=4, name="Flaky App")
    logged_in.post("/admin/api/retry/all")
    run_queue()
    receiver.status = 200
    with db.connection() as conn:
        conn.execute("UPDATE app_delivery_control SET probe_at = now() WHERE app_id = %s",
                     (app_id,))
    delivery_control.tick()
    run_queue()
    run_scheduled()
    sending.send_due()
    assert webhook.kinds() == ["app_circuit_open", "app_circuit_closed"]
    assert "a delivery went through" in webhook.bodies[1]["text"]


def test_a_flapping_circuit_sends_one_alert_per_cooldown_saying_how_it_ends(
        seed, webhook, monkeypatch):
    _use(monkeypatch, webhook_url=webhook.url, cooldown_minutes=15, failed_rise_count=0)
    app_id = seed.app("Flapping App")
    _open_and_close(app_id, 3)  # six real transitions
    for _ in range(THRESHOLD):  # and open again: seven
        with db.connection() as conn:
            delivery_control.record_failed(conn, app_id, "HTTP 503")
    # Another worker seeing the same opening records nothing.
    with db.connection() as conn:
        row = conn.execute("SELECT *, circuit_opened_at FROM app_delivery_control "
                           "WHERE app_id = %s", (app_id,)).fetchone()
        assert changes.app_circuit_opened(conn, app_id, row) is None
    assert len(_alerts()) == 7

    sending.send_due()
    sending.send_due()
    assert webhook.kinds() == ["app_circuit_open"]  # the first; the rest wait for the cool-down

    _time_passes()
    sending.send_due()
    assert webhook.kinds() == ["app_circuit_open", "app_circuit_open"]
    last = webhook.bodies[-1]
    assert last["state"] == "open" and last["folded_changes"] == 5
    assert "5 earlier change(s)" in last["text"]
    statuses = [a["status"] for a in _alerts()]
    assert statuses == ["sent"] + ["folded"] * 5 + ["sent"]
    # Slack's text escapes what an app sent; the structured fields keep it.
    assert "&lt;b&gt;down&lt;/b&gt;" in webhook.bodies[0]["text"]
    assert webhook.bodies[0]["facts"]["error"] == "HTTP 503 <b>down</b>"


def test_a_receiver_that_fails_then_recovers_gets_it_once_and_every_attempt_is_recorded(
        webhook, monkeypatch):
    _use(monkeypatch, webhook_url=webhook.url, max_attempts=5)
    webhook.fail_first = 2
    with db.connection() as conn:
        changes.test_alert(conn, "admin")
    assert sending.send_due() == {"sent": 0, "retrying": 1, "failed": 0}
    assert sending.send_due() == {"sent": 0, "retrying": 0, "failed": 0}  # backing off
    _time_passes()
    assert sending.send_due()["retrying"] == 1
    _time_passes()
    assert sending.send_due()["sent"] == 1
    assert webhook.kinds() == ["test"]
    with db.connection() as conn:
        attempts = conn.execute("SELECT attempt, ok, http_status, error FROM alert_attempts "
                                "ORDER BY id").fetchall()
    assert [(a["attempt"], a["ok"], a["http_status"]) for a in attempts] == [
        (1, False, 500), (2, False, 500), (3, True, 200)]
    assert attempts[0]["error"] == "webhook answered HTTP 500: upstream down"


def test_an_unreachable_webhook_is_given_up_and_its_url_never_written(webhook, monkeypatch):
    url = webhook.url
    webhook.close()  # nothing listens there any more
    _use(monkeypatch, webhook_url=url, max_attempts=2)
    with db.connection() as conn:
        changes.test_alert(conn, "admin")
    sending.send_due()
    _time_passes()
    assert sending.send_due()["failed"] == 1
    (alert,) = _alerts()
    assert alert["status"] == "failed" and alert["attempts"] == 2
    assert "webhook not reached" in alert["last_error"] and "s3cr3t" not in alert["last_error"]
    assert sending.send_due() == {"sent": 0, "retrying": 0, "failed": 0}


def test_email_with_starttls_logs_in_only_over_a_verified_tls_connection(monkeypatch, tmp_path):
    certificate = self_signed_certificate(tmp_path)
    smtp = SmtpServer(user="alerts", password="smtp-pass-123", certificate=certificate)
    try:
        settings = dict(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=True,
                        smtp_user="alerts", smtp_password="smtp-pass-123",
                        email_from="docora@example.com", email_to=("ops@example.com",))
        # A certificate the machine does not trust: nothing is sent, the password included.
        _use(monkeypatch, **settings)
        with db.connection() as conn:
            changes.test_alert(conn, "alice")
        assert sending.send_due()["retrying"] == 1
        assert "SSLCertVerificationError" in _alerts()[-1]["last_error"]
        assert smtp.logins == [] and smtp.messages == []

        # Trusted (as a CA the machine has): the login and the message go over TLS.
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        _time_passes()
        assert sending.send_due()["sent"] == 1
        assert smtp.tls_logins == [True]
        (message,) = smtp.messages
        assert message["Subject"].startswith("[Docora Admin] Test alert")
    finally:
        smtp.close()


def test_email_goes_through_smtp_with_login(monkeypatch):
    smtp = SmtpServer(user="alerts", password="smtp-pass-123")
    try:
        _use(monkeypatch, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False,
             smtp_user="alerts", smtp_password="smtp-pass-123",
             email_from="docora@example.com", email_to=("ops@example.com", "dev@example.com"),
             console_url="https://admin.example.com")
        with db.connection() as conn:
            changes.test_alert(conn, "alice")
        assert sending.send_due()["sent"] == 1
        (message,) = smtp.messages
        assert smtp.logins == ["alerts"]
        assert message["Subject"].startswith("[Docora Admin] Test alert")
        assert message["To"] == "ops@example.com, dev@example.com"
        body = message.get_content()
        assert "sent by alice" in body and "Console: https://admin.example.com/admin/alerts" in body

        # A wrong password is an attempt that failed, its error without the password.
        _use(monkeypatch, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False,
             smtp_user="alerts", smtp_password="wrong-pass-456",
             email_from="docora@example.com", email_to=("ops@example.com",))
        with db.connection() as conn:
            changes.test_alert(conn, "alice")
        assert sending.send_due()["retrying"] == 1
        error = _alerts()[-1]["last_error"]
        assert "535" in error and "wrong-pass" not in error
    finally:
        smtp.close()


@pytest.mark.parametrize("env, message", [
    ({"ALERT_WEBHOOK_URL": "ftp://hooks.example.com/T0/s3cr3t"}, "ALERT_WEBHOOK_URL must be"),
    ({"ALERT_SMTP_HOST": "smtp.example.com"}, "set ALERT_EMAIL_FROM"),
    ({"ALERT_SMTP_HOST": "smtp.example.com", "ALERT_EMAIL_FROM": "a@example.com",
      "ALERT_EMAIL_TO": "not an address"}, "ALERT_EMAIL_TO must be e-mail addresses"),
    ({"ALERT_EMAIL_TO": "ops@example.com"}, "need ALERT_SMTP_HOST"),
    ({"ALERT_SMTP_HOST": "smtp.example.com", "ALERT_EMAIL_FROM": "a@example.com",
      "ALERT_EMAIL_TO": "b@example.com", "ALERT_SMTP_USER": "u"}, "go together"),
    ({"ALERT_SMTP_PORT": "70000"}, "ALERT_SMTP_PORT must be between 1 and 65535"),
    ({"ALERT_FAILED_RISE_COUNT": "many"}, "ALERT_FAILED_RISE_COUNT must be a whole number"),
    ({"ALERT_FAILED_RISE_MINUTES": "0"}, "ALERT_FAILED_RISE_MINUTES must be between"),
    ({"ALERT_COOLDOWN_MINUTES": "-1"}, "ALERT_COOLDOWN_MINUTES must be between"),
    ({"ALERT_CONSOLE_URL": "admin.example.com"}, "ALERT_CONSOLE_URL must be"),
    ({"ALERT_SMTP_STARTTLS": "maybe"}, "ALERT_SMTP_STARTTLS must be true or false"),
])
@pytest.mark.no_services
def test_bad_alert_settings_stop_start_up_naming_the_setting(env, message):
    with pytest.raises(config.ConfigError, match=message) as raised:
        config.load_settings({**TEST_ENV, **env})
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.no_services
def test_good_alert_settings_and_secrets_kept_out_of_repr():
    settings = config.load_settings({
        **TEST_ENV, "ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/s3cr3t",
        "ALERT_SMTP_HOST": "smtp.example.com", "ALERT_EMAIL_FROM": "docora@example.com",
        "ALERT_EMAIL_TO": "ops@example.com, dev@example.com", "ALERT_SMTP_USER": "u",
        "ALERT_SMTP_PASSWORD": "pw-s3cr3t", "ALERT_FAILED_RISE_COUNT": "10",
        "ALERT_FAILED_RISE_MINUTES": "5"}).alerts
    assert settings.channels == ("webhook", "email")
    assert settings.email_to == ("ops@example.com", "dev@example.com")
    assert (settings.failed_rise_count, settings.failed_rise_minutes) == (10, 5)
    assert "s3cr3t" not in repr(settings)


def test_the_page_says_what_it_knows(client, logged_in, webhook, monkeypatch):
    page = client.get("/admin/alerts").get_data(as_text=True)
    assert "No alert channel configured" in page and "No alerts yet" in page
    assert 'id="alerts-test-button"' not in page
    refused = logged_in.post("/admin/api/alerts/test")
    assert refused.status_code == 409 and refused.get_json() == {
        "error": "No alert channel configured: set ALERT_WEBHOOK_URL or ALERT_SMTP_HOST"}

    _use(monkeypatch, webhook_url=webhook.url)
    page = client.get("/admin/alerts").get_data(as_text=True)
    assert "No alert channel configured" not in page and "Webhook: 127.0.0.1" in page
    assert "s3cr3t" not in page and 'id="alerts-test-button"' in page
    # Without the CSRF token nothing is sent.
    assert client.post("/admin/api/alerts/test").status_code == 400
    fragment = logged_in.post("/admin/alerts/test", headers=HX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and 'id="alerts-notice"' in html
    assert "queued on webhook" in html and "webhook: pending" in html
    listed = client.get("/admin/api/alerts").get_json()
    (alert,) = listed["data"]
    assert alert["kind"] == "test" and alert["deliveries"][0]["status"] == "pending"
    assert listed["channels"] == [{"channel": "webhook", "target": "127.0.0.1"}]
    with db.connection() as conn:
        audited = conn.execute("SELECT actor, details FROM audit_events "
                               "WHERE action = 'alert.test'").fetchone()
    assert audited["actor"] == "admin" and audited["details"]["channels"] == ["webhook"]
    run_queue()
    assert webhook.kinds() == ["test"]
    page = client.get("/admin/alerts").get_data(as_text=True)
    assert "webhook: sent" in page



def test_a_close_whose_alert_was_lost_is_recorded_by_the_watchdog(seed, webhook, monkeypatch):
    _use(monkeypatch, webhook_url=webhook.url, cooldown_minutes=0, failed_rise_count=0)
    app_id = seed.app("Crashy App")
    for _ in range(THRESHOLD):
        with db.connection() as conn:
            delivery_control.record_failed(conn, app_id, "HTTP 502")
    sending.tick()
    assert [a["kind"] for a in _alerts()] == ["app_circuit_open"]
    # The delivery that closes it commits; the process dies before the alert.
    with db.connection() as conn:
        conn.execute("UPDATE app_delivery_control SET circuit_opened_at = NULL, "
                     "consecutive_failures = 0 WHERE app_id = %s", (app_id,))
    sending.tick()
    sending.tick()
    sending.send_due()
    assert webhook.kinds() == ["app_circuit_open", "app_circuit_closed"]
    assert "found closed" in webhook.bodies[1]["text"]


def test_a_viewer_sees_alerts_but_sends_none_and_the_form_works_without_javascript(
        app, client, logged_in, webhook, monkeypatch):
    _use(monkeypatch, webhook_url=webhook.url)
    viewer, _ = client_as(app, "viewer")
    refused = viewer.post("/admin/api/alerts/test")
    assert refused.status_code == 403 and "needs the operator role" in refused.get_json()["error"]
    page = viewer._client.get("/admin/alerts").get_data(as_text=True)
    assert 'id="alerts-test-button"' not in page and "Webhook: 127.0.0.1" in page
    sent = logged_in.post("/admin/alerts/test", data={"csrf_token": logged_in.csrf_token})
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/admin/alerts")
    page = client.get("/admin/alerts").get_data(as_text=True)
    assert "queued on webhook" in page and 'data-kind="test"' in page
    assert [a["kind"] for a in _alerts()] == ["test"]
