"""Which network addresses a tenant may make the server connect to (SSRF guard).

A tenant chooses some of the hosts the server connects to (a webhook URL, the account's
own SMTP relay). Without a guard the server becomes a way into its own network: a port
scan of loopback and private hosts, cloud metadata at 169.254.169.254, banners echoed back
in error messages. So a tenant's host must resolve to public addresses only (unless the
operator allows private networks), and the connection must go to exactly the address that
was checked, so that a DNS answer that changes between the check and the connection (DNS
rebinding) cannot slip through.

One implementation for every channel: the webhook channel and the SMTP relay use it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that carry an IPv4 address, or that reach IPv4 hosts through a translator
# on the way: the IPv4 address inside is what such a connection really reaches.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: a site's own translator
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d (RFC 4291)


class BlockedAddress(Exception):
    """The host resolves to an address the server must not connect to for a tenant."""

    def __init__(self, host: str, address: IPAddress) -> None:
        # The address itself stays out of the message, which tenants read: it would tell
        # them what the server's own DNS says about internal names.
        super().__init__(f"{host} resolves to a non-public address")
        self.host = host
        self.address = address


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, where it is one of the spellings that
    carry one: IPv4-mapped (::ffff:a.b.c.d), 6to4 (2002:AABB:CCDD::/48), NAT64
    (64:ff9b::a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_blocked(address: IPAddress) -> bool:
    """True for an address a tenant's connection must not reach unless private networks
    are allowed: anything not globally routable, in any spelling."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL or address in _IPV4_COMPATIBLE:
            # A site's own translator reaches its own network; ::/96 is not routable.
            return True
        inner = embedded_ipv4(address)
        if inner is not None:
            # What the connection reaches (Python counts 64:ff9b::/96 as reserved, but
            # on an IPv6-only network with DNS64 every IPv4 host is spelled that way).
            return is_blocked(inner)
    return (
        address.is_loopback
        or address.is_private  # includes IPv6 unique-local fc00::/7
        or address.is_link_local  # 169.254/16, where cloud metadata services live; fe80::/10
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        # Anything else not globally routable (100.64/10 carrier-grade NAT, Teredo, ...).
        or not address.is_global
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal stands for, in any spelling the system
    resolver accepts without DNS ("127.1", "2130706433", "0x7f.0.0.1", "::ffff:7f00:1");
    None for a name."""
    host = host.strip().strip("[]")
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return _address_of(infos[0]) if infos else None


async def public_address(host: str, port: int) -> str:
    """The address to connect to: `host` resolved, every answer checked. Raises
    BlockedAddress when any answer is not public (a name that resolves both ways is a
    trap), socket.gaierror when there is no answer."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [_address_of(info) for info in infos]
    if not addresses:
        raise socket.gaierror(f"no address for {host}")
    for address in addresses:
        if is_blocked(address):
            raise BlockedAddress(host, address)
    return str(addresses[0])


def _address_of(info: tuple[object, ...]) -> IPAddress:
    sockaddr = info[4]
    assert isinstance(sockaddr, tuple)
    # An IPv6 answer may carry a scope ("fe80::1%eth0"): the address is what is checked.
    return ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
