"""What an alert says: one line of text (Slack's `text`), the structured fields beside it, and
the e-mail made of both.

Names and errors come from client apps and remote git hosts: untrusted. In the Slack text, &, <
and > are escaped as Slack asks (so an error cannot make a link or a mention); the structured
fields carry them as they are, for a script to handle.
"""
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ... import runtime

KIND_TITLES = {
    "app_circuit_open": "App circuit opened",
    "app_circuit_closed": "App circuit closed",
    "repository_circuit_open": "Repository circuit opened",
    "repository_circuit_closed": "Repository circuit closed",
    "operation_failures": "Bulk operation ended with failures",
    "failed_rise": "Failed count rising",
    "test": "Test alert",
}


def slack_escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _app(facts):
    name = facts.get("app_name")
    return f"{name} ({facts['app_id']})" if name else facts["app_id"]


def _repository(facts):
    name = facts.get("repository")
    return f"{name} ({facts['repository_id']})" if name else facts["repository_id"]


def sentence(alert):
    """The alert in one plain sentence (not escaped)."""
    facts, kind = alert["facts"], alert["kind"]
    if kind == "app_circuit_open":
        text = (f"Circuit opened for app {_app(facts)} after "
                f"{facts['consecutive_failures']} failed attempts in a row; its deliveries "
                f"are held. Last error: {facts.get('error') or 'none recorded'}")
    elif kind == "app_circuit_closed":
        text = (f"Circuit closed for app {_app(facts)} ({facts['closed_by']}); its held "
                "deliveries are queued again.")
    elif kind == "repository_circuit_open":
        text = (f"Git circuit opened for repository {_repository(facts)} after "
                f"{facts['consecutive_failures']} git failures in a row, until "
                f"{facts['open_until']}. Last error: {facts.get('error')}")
    elif kind == "repository_circuit_closed":
        text = (f"Git circuit closed for repository {_repository(facts)} "
                f"({facts['closed_by']}); its held links are queued again.")
    elif kind == "operation_failures":
        scope = f"app {facts['app_id']}" if facts.get("app_id") else "all apps"
        text = (f"Bulk {facts['kind']} {facts['operation_id']} ({scope}) ended: "
                f"{facts['delivered']} delivered, {facts['failed_again']} failed again, "
                f"{facts['reset_failed']} could not be reset, of {facts['total']}.")
    elif kind == "failed_rise":
        text = (f"{facts['entered_failed']} links entered failed in the last "
                f"{facts['minutes']} minutes (more than {facts['limit']}).")
    else:
        text = (f"Test alert sent by {facts.get('requested_by') or 'an operator'}: this "
                "channel receives Docora Admin alerts.")
    if alert["folded_count"]:
        text += (f" ({alert['folded_count']} earlier change(s) of this subject within the "
                 "cool-down are folded into this alert.)")
    return text


def console_link(alert):
    """The console page of the alert's subject, or None when ALERT_CONSOLE_URL is not set (the
    worker cannot know the console's address by itself)."""
    base = runtime.settings().alerts.console_url
    if not base:
        return None
    facts = alert["facts"]
    if alert["kind"] in ("app_circuit_open", "app_circuit_closed"):
        return f"{base}/admin/apps/{facts['app_id']}"
    if alert["kind"] in ("repository_circuit_open", "repository_circuit_closed"):
        return f"{base}/admin/notifications"
    if alert["kind"] == "operation_failures":
        return f"{base}/admin/operations"
    if alert["kind"] == "failed_rise":
        return f"{base}/admin/notifications"
    return f"{base}/admin/alerts"


def webhook_body(alert):
    """Slack-compatible JSON: `text`, plus the structured fields."""
    link = console_link(alert)
    text = f"[Docora Admin] {KIND_TITLES[alert['kind']]}: {slack_escape(sentence(alert))}"
    if link:
        text += f" <{link}|Open the console>"
    return {"text": text, "alert_id": alert["alert_id"], "kind": alert["kind"],
            "subject": alert["subject"], "state": alert["state"],
            "at": alert["created_at"].isoformat(), "console_url": link,
            "folded_changes": alert["folded_count"], "facts": alert["facts"]}


def email_message(alert, sender, recipients):
    """The alert as an e-mail (plain text)."""
    message = EmailMessage()
    message["Subject"] = f"[Docora Admin] {KIND_TITLES[alert['kind']]}: {alert['subject']}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="docora-admin")
    lines = [sentence(alert), "", f"Kind: {alert['kind']}", f"Subject: {alert['subject']}",
             f"State: {alert['state']}", f"At: {alert['created_at'].isoformat()}",
             f"Alert id: {alert['alert_id']}"]
    lines += [f"{key}: {value}" for key, value in alert["facts"].items()]
    link = console_link(alert)
    if link:
        lines += ["", f"Console: {link}"]
    message.set_content("\n".join(lines) + "\n")
    return message
