"""No webhook to an internal address (webhook_address.py): the rule for a written base_url, the
rule for a resolved address, and the worker refusing to connect to one
(services/delivery/webhook_client.py) unless ALLOW_PRIVATE_WEBHOOKS is set (the suite sets it:
its receivers are on 127.0.0.1)."""
import dataclasses
import hashlib
import re
import socket
from collections import namedtuple

import pytest

from docora_admin import db, runtime
from docora_admin.services.delivery import payloads, webhook_client
from docora_admin.services.delivery import snapshot
from docora_admin.webhook_address import address_problem, written_url_problem
from tests.test_snapshot import link, receiver, repo  # noqa: F401 (fixtures)

INVALID = "base_url must be a valid URL"
HTTPS = "URL must use HTTPS"
LOCALHOST = "Localhost URLs are not allowed"
PRIVATE = "Private IP addresses are not allowed"
LINK_LOCAL = "Link-local addresses are not allowed"
HINT = " (set ALLOW_PRIVATE_WEBHOOKS=true to allow)"


@pytest.mark.no_services
@pytest.mark.parametrize("url,problem", [
    ("https://hooks.example.com/docora", None),
    ("https://hooks.example.com:8443/docora/", None),
    ("https://93.184.216.34/hooks", None),
    ("https://[2606:4700::1111]/hooks", None),
    ("https://HOOKS.Example.COM./x", None),
    ("not a url", INVALID),
    ("hooks.example.com/docora", INVALID),
    ("https://", INVALID),
    ("https:///path", INVALID),
    ("https://hooks.example.com:port/", INVALID),
    ("https://[::1/", INVALID),
    ("http://hooks.example.com/docora", HTTPS),
    ("ftp://hooks.example.com/", HTTPS),
    ("https://localhost/hooks", LOCALHOST),
    ("https://LOCALHOST.:8443/", LOCALHOST),
    ("https://api.localhost/", LOCALHOST),
    ("https://0.0.0.0/", LOCALHOST),
    ("https://[::1]:8443/", LOCALHOST),
    ("https://127.0.0.1/hooks", PRIVATE),
    ("https://127.1.2.3/", PRIVATE),
    ("https://10.0.0.5/", PRIVATE),
    ("https://172.16.0.1/", PRIVATE),
    ("https://172.31.255.254/", PRIVATE),
    ("https://192.168.1.10/", PRIVATE),
    ("https://100.64.0.1/", PRIVATE),  # shared (carrier-grade NAT)
    ("https://[::ffff:127.0.0.1]/", PRIVATE),  # IPv4-mapped
    ("https://[::ffff:10.0.0.5]/", PRIVATE),
    ("https://[fc00::1]/", PRIVATE),  # unique local
    ("https://[0:0:0:0:0:0:0:1]/", PRIVATE),  # ::1 written out
    ("https://[::]/", PRIVATE),
    ("https://224.0.0.1/", PRIVATE),  # multicast
    ("https://240.0.0.1/", PRIVATE),  # reserved
    ("https://2130706433/", PRIVATE),  # 127.0.0.1 as one number: the resolver reads it so
    ("https://0x7f.1/", PRIVATE),
    ("https://169.254.169.254/latest/meta-data", LINK_LOCAL),  # a cloud's metadata service
    ("https://[fe80::1]/", LINK_LOCAL),
])
def test_written_url_rules(url, problem):
    assert written_url_problem(url, allow_private=False) == problem


@pytest.mark.no_services
@pytest.mark.parametrize("url,problem", [
    ("http://127.0.0.1:8765/hooks", None),  # a development receiver
    ("http://localhost:3000/", None),
    ("https://10.0.0.5/", None),
    ("http://[::1]:8080/", None),
    ("https://hooks.example.com/", None),
    ("ftp://127.0.0.1/", "URL must use HTTP or HTTPS"),
    ("127.0.0.1:8765", INVALID),
])
def test_allow_private_lifts_localhost_private_and_https(url, problem):
    assert written_url_problem(url, allow_private=True) == problem


@pytest.mark.no_services
@pytest.mark.parametrize("ip,host,message", [
    ("93.184.216.34", "hooks.example.com", None),
    ("2606:4700::1111", "hooks.example.com", None),
    ("::ffff:93.184.216.34", "hooks.example.com", None),
    ("10.0.0.5", "hooks.example.com", "refused: hooks.example.com resolves to private address "
                                      "10.0.0.5" + HINT),
    ("172.16.4.2", "a.example", "refused: a.example resolves to private address 172.16.4.2"),
    ("192.168.0.1", "a.example", "refused: a.example resolves to private address 192.168.0.1"),
    ("127.0.0.1", "localhost", "refused: localhost resolves to loopback address 127.0.0.1"),
    ("::1", "localhost", "refused: localhost resolves to loopback address ::1"),
    ("::ffff:127.0.0.1", "a.example", "refused: a.example resolves to loopback address "
                                      "::ffff:127.0.0.1"),
    ("169.254.169.254", "a.example", "refused: a.example resolves to link-local address "
                                     "169.254.169.254"),
    ("fe80::1", "a.example", "refused: a.example resolves to link-local address fe80::1"),
    ("100.64.0.1", "a.example", "refused: a.example resolves to shared (carrier-grade NAT) "
                                "address 100.64.0.1"),
    ("0.0.0.0", "a.example", "refused: a.example resolves to unspecified address 0.0.0.0"),
    ("fd12::1", "a.example", "refused: a.example resolves to private address fd12::1"),
    ("240.0.0.1", "a.example", "refused: a.example resolves to reserved address 240.0.0.1"),
    ("127.0.0.1", "127.0.0.1", "refused: 127.0.0.1 is a loopback address" + HINT),
    ("10.0.0.5", None, "refused: 10.0.0.5 is a private address" + HINT),
])
def test_resolved_address_rule(ip, host, message):
    problem = address_problem(ip, allow_private=False, host=host)
    if message is None:
        assert problem is None
    else:
        assert problem.startswith(message) and problem.endswith(HINT)
    assert address_problem(ip, allow_private=True, host=host) is None


CurlSockAddr = namedtuple("CurlSockAddr", "family socktype protocol addr")


@pytest.mark.no_services
def test_the_guard_opens_a_socket_for_a_public_address_only():
    guard = webhook_client._AddressGuard("hooks.example.com")
    assert guard(0, CurlSockAddr(socket.AF_INET, socket.SOCK_STREAM, 6,
                                 ("10.0.0.5", 443))) == webhook_client.pycurl.SOCKET_BAD
    assert guard.refused.startswith("refused: hooks.example.com resolves to private address")
    opened = guard(0, CurlSockAddr(socket.AF_INET6, socket.SOCK_STREAM, 6,
                                   ("2606:4700::1111", 443, 0, 0)))
    assert isinstance(opened, socket.socket) and opened.family == socket.AF_INET6
    assert guard.refused is None  # the address curl goes on with was allowed
    opened.close()


# --- the worker ----------------------------------------------------------------------------

@pytest.fixture
def worker(tmp_path, monkeypatch, empty_queue):
    """A snapshot worker's settings: a git cache of the test's own, a short timeout."""
    monkeypatch.setenv("DOCORA_GIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(runtime.settings(), delivery_timeout_s=2))


@pytest.fixture
def strict(worker, monkeypatch):
    """ALLOW_PRIVATE_WEBHOOKS off, as in production."""
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(runtime.settings(), allow_private_webhooks=False))


def _last_attempt_error(repository_id):
    with db.connection() as conn:
        return conn.execute("SELECT error FROM delivery_attempts WHERE repository_id = %s "
                            "ORDER BY id DESC LIMIT 1", (repository_id,)).fetchone()["error"]


def test_the_worker_never_connects_to_a_private_address(seed, receiver, repo, strict):
    app_id, repository_id = link(seed, receiver, repo)  # http://127.0.0.1:<port>/hooks
    assert snapshot.run_snapshot(app_id, repository_id) == "pending_snapshot"
    assert receiver.connections == 0 and receiver.requests == []
    expected = "refused: 127.0.0.1 is a loopback address" + HINT
    assert seed.link_status(app_id, repository_id)["last_error"] == expected
    assert _last_attempt_error(repository_id) == expected


def test_a_name_is_judged_by_the_address_it_resolves_to(seed, receiver, repo, strict):
    # `localhost` in a stored base_url (onboarded before the rule, or written to the database):
    # the worker sees only what it resolves to, and refuses that.
    receiver.base_url = receiver.base_url.replace("127.0.0.1", "localhost")
    app_id, repository_id = link(seed, receiver, repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "pending_snapshot"
    assert receiver.connections == 0 and receiver.requests == []
    error = seed.link_status(app_id, repository_id)["last_error"]
    assert re.fullmatch(r"refused: localhost resolves to loopback address (127\.0\.0\.1|::1)"
                        + re.escape(HINT), error), error
    assert _last_attempt_error(repository_id) == error


def test_with_allow_private_webhooks_the_same_link_is_delivered(seed, receiver, repo, worker):
    assert runtime.settings().allow_private_webhooks  # the suite's setting
    app_id, repository_id = link(seed, receiver, repo)
    assert snapshot.run_snapshot(app_id, repository_id) == "synced"
    assert receiver.bad_signatures == 0 and len(receiver.requests) == 3


def test_a_connection_kept_alive_when_allowed_is_not_reused_when_refused(receiver, worker,
                                                                          monkeypatch):
    # The idle handles of a host are kept apart by the rule they were opened under, so an
    # allowed connection left open is never the way around the check.
    repository = {"repository_id": "repo_x", "github_url": "https://github.com/o/r",
                  "owner": "o", "name": "r"}
    data = b"# Docs\n"
    [body] = payloads.file_bodies(repository, "a" * 40, "README.md",
                                  hashlib.sha256(data).hexdigest(), data)
    allowed = webhook_client.WebhookClient(receiver.base_url, "app_x", receiver.auth_key, 2)
    allowed.post("create", body)
    assert receiver.connections == 1
    monkeypatch.setattr(runtime, "_settings",
                        dataclasses.replace(runtime.settings(), allow_private_webhooks=False))
    refused = webhook_client.WebhookClient(receiver.base_url, "app_x", receiver.auth_key, 2)
    with pytest.raises(webhook_client.DeliveryError) as excinfo:
        refused.post("create", body)
    assert str(excinfo.value) == "refused: 127.0.0.1 is a loopback address" + HINT
    assert excinfo.value.http_status is None
    assert receiver.connections == 1 and len(receiver.requests) == 1
