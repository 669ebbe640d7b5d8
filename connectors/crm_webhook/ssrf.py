"""The SSRF guard: a webhook URL a reseller gives must not reach into our own network.

A reseller registers the URL, the hub's process calls it: without a guard,
``https://10.0.0.5/admin`` or the cloud metadata address would make the hub
a proxy into the network it runs in. So a URL is refused (``UrlRefused``, with
the reason the API shows) unless it is https to a host whose every address is
global: not private, loopback, link-local, multicast, reserved, unspecified,
shared (CGNAT 100.64/10) or a metadata address, IPv4 embedded in IPv6
(mapped, compatible, 6to4, NAT64) judged as the IPv4 it carries. Every
resolved address is checked: a name resolving to one public and one private
address is refused, since the client may connect to either.

The operator's allow-list (``PASSPORT_HUB_WEBHOOK_ALLOW_HOSTS``: host names,
addresses, networks) makes exceptions: an allowed host may be private and may
be called over plain http (a CRM on the LAN, the local test receiver).

The check runs before every attempt, not only at registration, since DNS
answers change. It resolves the name itself, so a rebinding DNS server
answering the guard with a public address and the HTTP client with a private
one, a few milliseconds later, is not stopped here; redirects, the other way
round a guard, are never followed (connectors/crm_webhook/sender.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from hub.config import Settings
from hub.errors import ConfigError, HubError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cloud instance metadata (AWS, GCP, Azure, OpenStack; AWS's IPv6 one): named on their
#: own so the reason says what was at stake.
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"),
                       ipaddress.ip_address("fd00:ec2::254")})
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible IPv6


class UrlRefused(HubError):
    """A webhook URL the guard refuses; the message says why."""


class Guard:
    """Checks a webhook URL, and the addresses its host resolves to, against the rules."""

    def __init__(self, allow: Sequence[str]) -> None:
        names: set[str] = set()
        networks: list[Network] = []
        for raw in allow:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if "/" in entry or ":" in entry:
                    raise ConfigError(f"webhook allow-list entry {raw.strip()!r} is neither a "
                                      "host name, an address nor a network") from None
                names.add(entry)
        self._names = frozenset(names)
        self._networks = tuple(networks)

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        """The guard of ``webhook_allow_hosts`` (comma-separated)."""
        return cls(settings.webhook_allow_hosts.split(","))

    def check(self, url: str) -> None:
        """Refuse ``url`` (``UrlRefused``) unless it may be called; resolves its host."""
        host, port, listed = self._static(url)
        if listed:
            return
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UrlRefused(f"host {host} does not resolve") from exc
        self._resolved(host, infos)

    async def check_async(self, url: str) -> None:
        """``check``, resolving with the running event loop (the sender's)."""
        host, port, listed = self._static(url)
        if listed:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UrlRefused(f"host {host} does not resolve") from exc
        self._resolved(host, infos)

    def _static(self, url: str) -> tuple[str, int, bool]:
        """Checks of the URL alone: its host, port, and whether the host is allow-listed.

        Parsed by httpx, the client that will call it: a second parser could read
        another host out of an odd URL (``https://a.example\\@10.0.0.1/``) than the
        one the client connects to.
        """
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise UrlRefused(f"the URL is not valid ({exc})") from exc
        scheme = parsed.scheme
        if scheme not in ("https", "http"):
            raise UrlRefused(f"scheme {scheme or '(none)'} is not https")
        if parsed.userinfo or "@" in parsed.netloc.decode("ascii", "replace"):
            raise UrlRefused("the URL carries user info (credentials); use the signature")
        host = parsed.raw_host.decode("ascii").rstrip(".").lower()
        if not host:
            raise UrlRefused("the URL has no host")
        port = parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)
        if not 0 < port < 65536:
            raise UrlRefused(f"port {port} is not valid")
        listed = host in self._names or self._literal_listed(host)
        if scheme == "http" and not listed:
            raise UrlRefused(f"http to {host} is refused: use https "
                             "(plain http is for allow-listed hosts only)")
        return host, port, listed

    def _literal_listed(self, host: str) -> bool:
        address = _literal(host)
        return address is not None and self._allowed(address)

    def _allowed(self, address: Address) -> bool:
        candidates = [address]
        embedded = _embedded(address)
        if embedded is not None:
            candidates.append(embedded)
        return any(a in net for a in candidates for net in self._networks)

    def _resolved(self, host: str, infos: Iterable[tuple[Any, ...]]) -> None:
        addresses = {_address(info[4][0]) for info in infos}
        if not addresses:
            raise UrlRefused(f"host {host} does not resolve")
        for address in sorted(addresses, key=str):
            if self._allowed(address):
                continue
            why = _forbidden(address)
            if why is not None:
                literal = _literal(host) == address
                subject = f"host {host}" if literal else f"host {host} resolves to {address}, which"
                raise UrlRefused(f"{subject} is {why}")


def _literal(host: str) -> Address | None:
    """The address a URL's host is written as, when it is one."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _address(text: str) -> Address:
    # getaddrinfo writes scoped IPv6 addresses as "fe80::1%eth0": the scope is no part of it
    return ipaddress.ip_address(text.split("%", 1)[0])


def _embedded(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _forbidden(address: Address) -> str | None:
    """Why the hub must not call ``address``, or None when it is a global one."""
    embedded = _embedded(address)
    if embedded is not None:
        why = _forbidden(embedded)
        return None if why is None else f"{why} (IPv4 {embedded} inside IPv6)"
    checks = (
        (address in _METADATA, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _SHARED, "a shared (CGNAT) address"),
        (address.is_reserved, "a reserved address"),  # before private, which includes 240/4
        (address.is_private, "a private address"),
        (not address.is_global, "not a global address"),
    )
    return next((why for hit, why in checks if hit), None)
