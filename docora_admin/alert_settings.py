"""The alert settings (services/alerts/), read with the others by config.load_settings: where
alerts go (a Slack-compatible webhook, SMTP e-mail) and when the failed-count rule fires.
Apart from config.py only to keep each module small; config.py hands in its helpers."""
import re
from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go (services/alerts/) and when the failed-count rule fires. The webhook URL
    (a Slack one is a secret) and the SMTP password are kept out of repr: never in a log."""
    webhook_url: str = field(default="", repr=False)
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = True
    email_from: str = ""
    email_to: tuple = ()
    console_url: str = ""
    failed_rise_count: int = 50
    failed_rise_minutes: int = 15
    cooldown_minutes: int = 15
    max_attempts: int = 8

    @property
    def channels(self):
        """The channels configured: ("webhook", "email"), either, or none."""
        return tuple(name for name, on in (("webhook", self.webhook_url),
                                           ("email", self.smtp_host)) if on)


_EMAIL_RE = re.compile(r"[^@\s<>,]+@[^@\s<>,]+")


def _addresses(env, name, ConfigError):
    raw = env.get(name, "").strip()
    found = tuple(part.strip() for part in raw.split(",") if part.strip())
    bad = [a for a in found if not _EMAIL_RE.fullmatch(a)]
    if bad:
        raise ConfigError(f"{name} must be e-mail addresses separated by commas, got {bad[0]!r}")
    return found


def load(env, ConfigError, _int, _bool):
    """AlertSettings from the environment, read with config.py's helpers (handed in: config
    imports this module); raises its ConfigError naming the bad setting."""
    webhook = env.get("ALERT_WEBHOOK_URL", "").strip()
    if webhook:  # the URL itself is never echoed: a Slack webhook URL is a credential
        parsed = urlparse(webhook)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError("ALERT_WEBHOOK_URL must be an http:// or https:// URL with a host")
    console = env.get("ALERT_CONSOLE_URL", "").strip().rstrip("/")
    if console and (urlparse(console).scheme not in ("http", "https")
                    or not urlparse(console).hostname):
        raise ConfigError(f"ALERT_CONSOLE_URL must be the console's http(s):// address, e.g. "
                          f"https://admin.example.com, got {console!r}")
    host = env.get("ALERT_SMTP_HOST", "").strip()
    user = env.get("ALERT_SMTP_USER", "").strip()
    password = env.get("ALERT_SMTP_PASSWORD", "")
    sender = _addresses(env, "ALERT_EMAIL_FROM", ConfigError)
    to = _addresses(env, "ALERT_EMAIL_TO", ConfigError)
    if host and (len(sender) != 1 or not to):
        raise ConfigError("ALERT_SMTP_HOST is set: set ALERT_EMAIL_FROM to one address and "
                          "ALERT_EMAIL_TO to one or more, separated by commas")
    if not host and (sender or to or user):
        raise ConfigError("ALERT_EMAIL_FROM, ALERT_EMAIL_TO and ALERT_SMTP_USER need "
                          "ALERT_SMTP_HOST (the SMTP server that sends alert e-mail)")
    if bool(user) != bool(password):
        raise ConfigError("ALERT_SMTP_USER and ALERT_SMTP_PASSWORD go together: set both "
                          "(SMTP login) or neither")
    return AlertSettings(
        webhook_url=webhook, smtp_host=host,
        smtp_port=_int(env, "ALERT_SMTP_PORT", 587, 1, 65535),
        smtp_user=user, smtp_password=password,
        smtp_starttls=_bool(env, "ALERT_SMTP_STARTTLS", True),
        email_from=sender[0] if sender else "", email_to=to, console_url=console,
        failed_rise_count=_int(env, "ALERT_FAILED_RISE_COUNT", 50, 0, 10_000_000),
        failed_rise_minutes=_int(env, "ALERT_FAILED_RISE_MINUTES", 15, 1, 10_080),
        cooldown_minutes=_int(env, "ALERT_COOLDOWN_MINUTES", 15, 0, 10_080),
        max_attempts=_int(env, "ALERT_MAX_ATTEMPTS", 8, 1, 100))
