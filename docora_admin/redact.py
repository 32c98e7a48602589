"""Removing secrets from text before it is shown, stored or logged.

Errors are scrubbed when they are written, and again whenever a row is read (db.py's row
factory scrubs every `last_error` / `error` column), so a credential written by another
component, or before a scrubber learned its form, is not shown, exported or sent.
"""
import re

# The userinfo of a URL: after "://", up to the last "@" before the host. Two forms:
# - user:password@ — the password may hold "/" or "@" unencoded (`https://u:ab/cd@host`), so
#   from a "user:" everything up to the last "@" before whitespace or a quote goes;
# - token@ (no colon): up to an "@" before the first "/", as before.
_USER_PASSWORD = re.compile(r"(?<=://)[^\s/@:'\"<>]+:[^\s'\"<>]*@")
_TOKEN = re.compile(r"(?<=://)[^/\s'\"<>]*@")


def scrub(text):
    """Replace the `user:token@` of every URL in `text` with `***@`."""
    if not text or "@" not in text:
        return text
    return _TOKEN.sub("***@", _USER_PASSWORD.sub("***@", text))
