"""The address guard that webhooks and account SMTP relays share (channels/addresses.py)."""

from __future__ import annotations

import ipaddress

import pytest

from channels.addresses import embedded_ipv4, is_blocked, literal_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd12:3456::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "2002:a00:1::1",  # 6to4 around 10.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 around 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 around 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
        "64:ff9b:1::808:808",  # a site's own NAT64 prefix
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::8.8.8.8",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo
    ],
)
def test_every_spelling_of_a_non_public_address_is_blocked(address: str) -> None:
    assert is_blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808"],
)
def test_public_addresses_are_not_blocked_in_any_spelling(address: str) -> None:
    assert not is_blocked(ipaddress.ip_address(address))


def test_the_ipv4_address_inside_an_ipv6_spelling_is_found() -> None:
    inside = {
        "::ffff:127.0.0.1": "127.0.0.1",
        "2002:7f00:1::": "127.0.0.1",
        "64:ff9b::a00:1": "10.0.0.1",
        "::10.0.0.1": "10.0.0.1",
    }
    for spelled, expected in inside.items():
        assert embedded_ipv4(ipaddress.ip_address(spelled)) == ipaddress.ip_address(expected)
    assert embedded_ipv4(ipaddress.ip_address("2606:4700::1111")) is None
    assert embedded_ipv4(ipaddress.ip_address("::1")) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
    ],
)
def test_an_ip_literal_is_read_in_every_spelling_without_dns(host: str, expected: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("host", ["localhost", "mail.example.test", "1.2.3.4.5", ""])
def test_a_name_is_not_an_ip_literal(host: str) -> None:
    assert literal_address(host) is None
