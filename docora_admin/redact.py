"""Removing secrets from text before it is shown, stored or logged."""
import re

# The userinfo of a URL: everything between "://" and the last "@" before the host's first "/".
# Greedy up to that "@", so a password that itself holds an unencoded "@" is removed whole.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s]*@")


def scrub(text):
    """Replace the `user:token@` of every URL in `text` with `***@`."""
    return _URL_CREDENTIALS.sub("***@", text)
