"""Where webhooks may go: the policy a messenger's ``webhook_url`` must pass.

The URL's shape (scheme, an IDNA-valid host, a port in 1..65535) is checked where it is
parsed (``wire.WebhookUrl``); this module decides whether a well-formed URL is a target
the server will deliver to. Hosts are classified the way the resolver will read them:
``127.1``, ``2130706433`` and ``0`` are IPv4 addresses to ``getaddrinfo``, so they are
to this check too. Names are not resolved here.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = ("localhost", "localhost.")


def parse_networks(spec: str) -> tuple[Network, ...]:
    """A comma-separated list of CIDRs (``169.254.0.0/16,fe80::/10``); raises ValueError."""
    out: list[Network] = []
    for part in spec.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not a CIDR network (e.g. 169.254.0.0/16)") from None
    return tuple(out)


def host_address(host: str) -> Address | None:
    """The IP address a URL host stands for, in any form the resolver accepts; None for names."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        # inet_aton reads the legacy IPv4 forms getaddrinfo also reads (127.1, 0x7f.1, 0).
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


def _plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_loopback(host: str) -> bool:
    lowered = host.lower()
    if lowered in _LOOPBACK_NAMES or lowered.endswith(".localhost"):
        return True
    address = host_address(host)
    return address is not None and _plain(address).is_loopback


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """The server's rules for webhook targets."""

    allowed_hosts: tuple[str, ...] = ()
    """Host globs a target must match (``--webhook-allowed-hosts``); empty allows any."""
    allow_nets: tuple[Network, ...] = ()
    """Networks allowed although otherwise refused (``--webhook-allow-net``)."""

    @classmethod
    def from_settings(cls, allowed_hosts: str, allow_net: str) -> WebhookPolicy:
        """Build from the two comma-separated settings."""
        hosts = tuple(p.strip().lower() for p in allowed_hosts.split(",") if p.strip())
        return cls(allowed_hosts=hosts, allow_nets=parse_networks(allow_net))

    def _allowed_net(self, address: Address) -> bool:
        plain = _plain(address)
        return any(plain in net for net in self.allow_nets if net.version == plain.version)

    def refusal(self, url: str, *, own: Iterable[tuple[str, int]] = ()) -> str | None:
        """Why the server will not deliver to ``url``, or None when it will.

        ``own`` lists the (host, port) pairs the server listens on: a URL pointing back
        at one of them would make the server post webhooks to itself.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
        if self.allowed_hosts and not any(
            fnmatch.fnmatchcase(host.lower(), p) for p in self.allowed_hosts
        ):
            return "its host is not in the server's webhook allow-list"
        address = host_address(host)
        if address is not None:
            plain = _plain(address)
            if plain.is_unspecified:
                return f"{host} is an unspecified address, which no receiver listens on"
            if plain.is_link_local and not self._allowed_net(plain):
                return (
                    f"{host} is a link-local address (cloud metadata endpoints live there); "
                    "allow it with --webhook-allow-net"
                )
        for own_host, own_port in own:
            if port == own_port and _points_at(host, address, own_host):
                return "it points back at this server's own address"
        return None


def _points_at(host: str, address: Address | None, own_host: str) -> bool:
    own_address = host_address(own_host)
    if own_address is not None and _plain(own_address).is_unspecified:
        return _is_loopback(host)  # listening everywhere: every loopback form is this server
    if _is_loopback(host) and _is_loopback(own_host):
        return True
    if address is not None and own_address is not None:
        return _plain(address) == _plain(own_address)
    return host.lower().rstrip(".") == own_host.lower().rstrip(".")


def listening_pairs(sockets: Sequence[object]) -> list[tuple[str, int]]:
    """(host, port) of each TCP socket name (``getsockname()`` tuples); Unix sockets skipped."""
    pairs: list[tuple[str, int]] = []
    for name in sockets:
        if isinstance(name, tuple) and len(name) >= 2:
            pairs.append((str(name[0]), int(name[1])))
    return pairs
