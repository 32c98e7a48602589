"""Which webhook addresses an app may have: no internal address (SSRF protection).

Two checks, one rule. written_url_problem() judges a base_url as an operator writes it at
onboarding (the messages of the original Docora's url-validator, answered as a 422).
address_problem() judges the address a worker is about to connect to, after DNS: the one that
counts, since a public-looking name can resolve to 10.0.0.5 (services/delivery/webhook_client.py
asks it for every connection curl opens).

ALLOW_PRIVATE_WEBHOOKS=true lifts both for development, whose receivers are plain http on
127.0.0.1.
"""
import ipaddress
import socket
from urllib.parse import urlsplit

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_LOCALHOST_NAMES = ("localhost", "0.0.0.0", "::1")


def _ip(host):
    """`host` as an IP address when it is one (IPv4-mapped IPv6 as its IPv4 address), else
    None. Legacy IPv4 forms (2130706433, 0x7f.1, 127.1) count: the resolver reads them so."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, UnicodeError, ValueError):
            return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _kind(ip):
    """None for a public address, else what it is ('loopback', 'private', ...)."""
    if ip.is_global and not ip.is_multicast and not ip.is_reserved:
        return None
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    return "private"


def written_url_problem(base_url: str, allow_private: bool) -> str | None:
    """None when `base_url` may be onboarded, else one line naming the rule it breaks, checked
    in this order: an absolute URL with a host; https; not localhost (localhost, *.localhost,
    0.0.0.0, ::1); an IP literal only when public (no private, loopback, link-local, shared,
    reserved, multicast or unspecified address, IPv4-mapped IPv6 judged as its IPv4).

    `allow_private` (ALLOW_PRIVATE_WEBHOOKS) lifts the localhost and private-address rules and
    the https one too (plain http is then allowed): development receivers listen on
    http://127.0.0.1. A name is not resolved here; the worker checks what it resolves to."""
    try:
        parts = urlsplit(base_url.strip())
        parts.port  # noqa: B018 (a port that is not a number raises)
    except ValueError:
        return "base_url must be a valid URL"
    host = (parts.hostname or "").rstrip(".")
    if not parts.scheme or not host:
        return "base_url must be a valid URL"
    if allow_private:
        return None if parts.scheme in ("http", "https") else "URL must use HTTP or HTTPS"
    if parts.scheme != "https":
        return "URL must use HTTPS"
    if host in _LOCALHOST_NAMES or host.endswith(".localhost"):
        return "Localhost URLs are not allowed"
    ip = _ip(host)
    kind = None if ip is None else _kind(ip)
    if kind == "link-local":
        return "Link-local addresses are not allowed"
    if kind is not None:
        return "Private IP addresses are not allowed"
    return None


def address_problem(ip: str, allow_private: bool, host: str | None = None) -> str | None:
    """None when a worker may connect to the resolved address `ip` (of the app's `host`, for
    the message), else the attempt's error, e.g. 'refused: hooks.example.com resolves to
    private address 10.0.0.5 (set ALLOW_PRIVATE_WEBHOOKS=true to allow)'."""
    if allow_private:
        return None
    address = _ip(ip)
    if address is None:
        return f"refused: {host or ip} resolves to {ip!r}, not an IP address"
    kind = _kind(address)
    if kind is None:
        return None
    what = (f"{host} resolves to {kind} address {ip}" if host and host != ip
            else f"{ip} is a {kind} address")
    return f"refused: {what} (set ALLOW_PRIVATE_WEBHOOKS=true to allow)"
