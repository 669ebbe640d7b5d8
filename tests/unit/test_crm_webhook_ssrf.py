"""The SSRF guard on webhook URLs: what it refuses, why, and what the allow-list lets through.

URLs name addresses literally (no DNS lookup) except ``localhost``, which every
host resolves; a name's DNS answer is given by replacing ``socket.getaddrinfo``,
the one call the guard resolves with.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from connectors.crm_webhook.ssrf import Guard, UrlRefused
from hub.config import Settings
from hub.errors import ConfigError

PUBLIC = "93.184.215.14"


def refusal(guard: Guard, url: str) -> str | None:
    """Why ``guard`` refuses ``url`` (checked both ways, which must agree); None if allowed."""
    reasons: list[str | None] = []
    for check in (guard.check, lambda u: asyncio.run(guard.check_async(u))):
        try:
            check(url)
        except UrlRefused as exc:
            reasons.append(str(exc))
        else:
            reasons.append(None)
    assert reasons[0] == reasons[1]
    return reasons[0]


def answers(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
    """Make ``names`` resolve to the given addresses; any other name does not resolve."""
    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in names[host]]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_public_https_url_passes() -> None:
    assert refusal(Guard([]), f"https://{PUBLIC}/hooks/leads?x=1") is None
    assert refusal(Guard([]), "https://[2606:4700::1111]:8443/hook") is None


@pytest.mark.parametrize("url", ["https://127.0.0.1/hook", "https://127.8.9.10/",
                                 "https://[::1]/hook", "https://localhost:8099/hook"])
def test_loopback_is_refused_by_default(url: str) -> None:
    assert "loopback" in (refusal(Guard([]), url) or "")


def test_the_reason_names_the_host_and_what_it_resolves_to() -> None:
    assert refusal(Guard([]), "https://10.0.0.1/") == "host 10.0.0.1 is a private address"
    assert refusal(Guard([]), "https://localhost/") == \
        "host localhost resolves to 127.0.0.1, which is a loopback address"


def test_listed_loopback_is_allowed_over_http_too() -> None:
    guard = Guard(["127.0.0.1", "Localhost."])
    assert refusal(guard, "http://127.0.0.1:8099/r/web-78") is None
    assert refusal(guard, "https://127.0.0.1/") is None
    assert refusal(guard, "http://localhost:8099/") is None
    assert "loopback" in (refusal(guard, "https://[::1]/") or "")


def test_http_is_refused_unless_the_host_is_listed() -> None:
    assert "use https" in (refusal(Guard([]), f"http://{PUBLIC}/hook") or "")
    assert refusal(Guard([PUBLIC]), f"http://{PUBLIC}/hook") is None


@pytest.mark.parametrize("host", ["169.254.169.254", "[fd00:ec2::254]"])
def test_cloud_metadata_is_refused(host: str) -> None:
    assert "metadata" in (refusal(Guard([]), f"https://{host}/latest/meta-data/") or "")


@pytest.mark.parametrize(("host", "why"), [
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[::ffff:10.0.0.1]", "private"),
    ("[::ffff:169.254.169.254]", "metadata"),
    ("[::127.0.0.1]", "loopback"),            # IPv4-compatible
    ("[2002:a00:1::]", "private"),            # 6to4 of 10.0.0.1
    ("[64:ff9b::a9fe:a9fe]", "metadata"),     # NAT64 of 169.254.169.254
])
def test_ipv4_inside_ipv6_is_judged_as_the_ipv4(host: str, why: str) -> None:
    reason = refusal(Guard([]), f"https://{host}/") or ""
    assert why in reason
    assert "inside IPv6" in reason


def test_a_mapped_public_address_passes() -> None:
    assert refusal(Guard([]), f"https://[::ffff:{PUBLIC}]/") is None


@pytest.mark.parametrize(("host", "why"), [
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("[fc00::1]", "private"), ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("169.254.1.1", "link-local"), ("[fe80::1]", "link-local"),
    ("224.0.0.1", "multicast"), ("[ff02::1]", "multicast"),
    ("0.0.0.0", "unspecified"), ("[::]", "unspecified"),  # noqa: S104 - a URL refused, no bind
    ("240.0.0.1", "reserved"), ("192.0.2.1", "private"),
])
def test_non_global_addresses_are_refused(host: str, why: str) -> None:
    assert why in (refusal(Guard([]), f"https://{host}/") or "")


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://example.com/x", "scheme ftp is not https"),
    ("file:///etc/passwd", "scheme file is not https"),
    ("example.com/hook", "scheme (none) is not https"),
    ("https:///hook", "no host"),
    ("https://user:pass@example.com/", "user info"),
    ("https://token@example.com/", "user info"),
    ("https://example.com:99999/", "not valid"),
    ("https://example.com:0/", "not valid"),
    ("https://a.example\\@10.0.0.1/", "user info"),
])
def test_malformed_urls_are_refused_before_any_lookup(url: str, why: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    answers(monkeypatch, {})
    assert why in (refusal(Guard([]), url) or "")


def test_a_cidr_in_the_allow_list_allows_its_addresses_only() -> None:
    guard = Guard(["10.1.0.0/16", "fd12::/16"])
    assert refusal(guard, "https://10.1.2.3/") is None
    assert refusal(guard, "http://10.1.200.1:8080/") is None
    assert refusal(guard, "https://[fd12::5]/") is None
    assert refusal(guard, "https://[::ffff:10.1.2.3]/") is None
    assert "private" in (refusal(guard, "https://10.2.0.1/") or "")


def test_a_name_resolving_into_a_listed_network_is_allowed_but_over_https_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answers(monkeypatch, {"crm.lan": ["10.1.0.9"]})
    guard = Guard(["10.1.0.0/16"])
    assert refusal(guard, "https://crm.lan/hook") is None
    assert "use https" in (refusal(guard, "http://crm.lan/hook") or "")


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    answers(monkeypatch, {"crm.example": [PUBLIC, "10.0.0.7"], "ok.example": [PUBLIC]})
    assert refusal(Guard([]), "https://crm.example/hook") == \
        "host crm.example resolves to 10.0.0.7, which is a private address"
    assert refusal(Guard([]), "https://ok.example/hook") is None


def test_a_listed_name_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    answers(monkeypatch, {"crm.lan": ["10.9.9.9"]})
    assert refusal(Guard(["crm.lan"]), "http://CRM.lan./hook") is None


def test_the_host_checked_is_the_one_the_client_connects_to(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answers(monkeypatch, {"xn--bcher-kva.example": ["10.0.0.3"]})
    assert refusal(Guard([]), "https://Bücher.example/") == \
        "host xn--bcher-kva.example resolves to 10.0.0.3, which is a private address"


def test_an_unresolvable_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    answers(monkeypatch, {})
    assert refusal(Guard([]), "https://nowhere.invalid/") == "host nowhere.invalid does not resolve"


def test_from_settings_reads_the_comma_separated_allow_list() -> None:
    guard = Guard.from_settings(Settings(webhook_allow_hosts=" 127.0.0.1, ,10.1.0.0/16 "))
    assert refusal(guard, "http://127.0.0.1/") is None
    assert refusal(guard, "https://10.1.0.1/") is None
    assert refusal(Guard.from_settings(Settings(webhook_allow_hosts="")),
                   "https://127.0.0.1/") is not None


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "fd00::/200", "not a/net"])
def test_a_bad_allow_list_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="allow-list entry"):
        Guard([entry])
