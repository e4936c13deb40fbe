"""Which hosts a gateway may name: meter networks yes, the platform's own services no.

A gateway's host and port are given by staff, and the poller then opens TCP connections
there. Without a rule, whoever may register a gateway could make the platform talk to
its own database on loopback, to link-local services or to a cloud's instance-metadata
service. Those are refused unless ``PREPAID_GATEWAY_ALLOWED_NETWORKS`` lists them; every
other address (private meter LANs such as 10/8, 172.16/12 and 192.168/16 included) is
allowed.

The rule is applied when a gateway is registered or imported (a name is resolved, and
refused if any of its addresses is) and again before every connection, on the addresses
the connection then uses, so a name that later resolves elsewhere gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from domain.errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

REFUSED_NETWORKS: tuple[tuple[str, str], ...] = (
    ("127.0.0.0/8", "loopback"),
    ("::1/128", "loopback"),
    ("0.0.0.0/8", "this host"),
    ("::/128", "this host"),
    ("169.254.0.0/16", "link-local"),
    ("fe80::/10", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("ff00::/8", "multicast"),
    ("255.255.255.255/32", "broadcast"),
)
# Instance-metadata services (AWS, GCP, Azure, Alibaba Cloud, Oracle, ...): refused even
# when a wider allowed network contains them; only an allowed network of exactly that
# one address lets them through.
METADATA_ADDRESSES = ("169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                      "192.0.0.192", "169.254.170.2", "169.254.0.23")
METADATA_NAMES = ("metadata", "metadata.google.internal", "metadata.goog",
                  "instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com",
                  "localhost", "localhost.localdomain")


class GatewayHostRefused(InvalidRequest):
    code = "gateway-host-not-allowed"


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """``"127.0.0.0/8, 169.254.10.0/24"`` → networks; ValueError on a bad entry."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(ipaddress.ip_network(item.strip(), strict=False)
                 for item in items if item.strip())


@dataclass(frozen=True)
class GatewayHostPolicy:
    allowed: tuple[Network, ...] = ()

    def refusal(self, address: Address) -> str | None:
        """Why this address may not be a gateway's, or None if it may."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if str(address) in METADATA_ADDRESSES:
            exact = any(n.num_addresses == 1 and address in n for n in self.allowed
                        if n.version == address.version)
            return None if exact else "a cloud metadata address"
        for network, kind in REFUSED_NETWORKS:
            net = ipaddress.ip_network(network)
            if net.version == address.version and address in net:
                if any(n.version == address.version and address in n
                       for n in self.allowed):
                    return None
                return f"a {kind} address"
        return None

    def check_addresses(self, host: str, addresses: Iterable[str]) -> None:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            why = self.refusal(address)
            if why is not None:
                raise GatewayHostRefused(
                    f"gateway host {host!r} is {why}; allow it with "
                    "PREPAID_GATEWAY_ALLOWED_NETWORKS if it really is a gateway")

    def check(self, host: str) -> None:
        """Refuse a host given for a gateway (registration, import)."""
        name = host.strip().rstrip(".").lower()
        try:
            literal = ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            self.check_addresses(host, [str(literal)])
            return
        if name in METADATA_NAMES or name.endswith(".localhost"):
            if not self._names_allowed(name):
                raise GatewayHostRefused(
                    f"gateway host {host!r} names a loopback or cloud metadata service; "
                    "allow its addresses with PREPAID_GATEWAY_ALLOWED_NETWORKS if it "
                    "really is a gateway")
        try:
            found = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError):
            # Not resolvable from here (yet): checked again on every connection.
            return
        self.check_addresses(host, [info[4][0] for info in found])

    def _names_allowed(self, name: str) -> bool:
        """A special name is allowed only if everything it resolves to is allowed."""
        try:
            found = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError):
            return False
        try:
            self.check_addresses(name, [info[4][0] for info in found])
        except GatewayHostRefused:
            return False
        return bool(found)


DEFAULT_POLICY = GatewayHostPolicy()
