"""Alerts: telling operators about state changes by a Slack-compatible webhook and e-mail.

Modules and their public functions:

changes: Recording alerts, one row per state change, in the transaction that makes the change
    (dedupe keys make several workers' sightings one alert).
    app_circuit_opened, app_circuit_closed, closed_by_delivery, repository_circuit_opened,
    repository_circuit_closed,
    operation_settled, check_failed_rise, heal_lost_closes, test_alert

messages: What an alert says: Slack's `text` (escaped), the structured fields, the e-mail.
    KIND_TITLES, slack_escape, sentence, console_link, webhook_body, email_message

sending: Delivering from the worker (the alert_deliveries outbox: leases, retries with
    backoff, every attempt recorded), the cool-down's folding, the watchdog's step.
    send_due, tick, queue_after_commit, prune

console: What the Alerts page and its JSON show, and the operator's test alert.
    channels, alert_json, recent, send_test
"""
