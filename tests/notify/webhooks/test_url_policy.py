"""The URL policy on its own (no DNS server needed: IP literals, or the answers scripted
at socket.getaddrinfo as a name server would give them): IPv6 addresses that carry a
non-global IPv4 address are refused, and an attempt gets the addresses that were
checked, the only ones it may connect to."""

import ipaddress
import re
import socket
from typing import Any

import pytest

from djangomart.notify.webhooks.url_policy import UrlRefused, endpoint_url_resolve

PUBLIC_V4 = "93.184.216.34"  # 0x5db8d822


@pytest.fixture(autouse=True)
def _public_only(settings: Any) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False


def scripted_dns(monkeypatch: pytest.MonkeyPatch, host: str, *addresses: str) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != host:
            return real(name, port, *args, **kwargs)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("::ffff:127.0.0.1", id="IPv4-mapped loopback"),
        pytest.param("::ffff:169.254.169.254", id="IPv4-mapped metadata service"),
        pytest.param("::127.0.0.1", id="IPv4-compatible loopback"),
        pytest.param("::10.1.2.3", id="IPv4-compatible private"),
        pytest.param("2002:7f00:1::1", id="6to4 of 127.0.0.1"),
        pytest.param("2002:a9fe:a9fe::1", id="6to4 of 169.254.169.254"),
        pytest.param("64:ff9b::7f00:1", id="NAT64 of 127.0.0.1"),
        pytest.param("64:ff9b::a01:203", id="NAT64 of 10.1.2.3"),
        pytest.param("64:ff9b:1::5db8:d822", id="local-use NAT64"),
        pytest.param("2001:0:5db8:d822::80ff:fffe", id="Teredo, client 127.0.0.1"),
        pytest.param("2001:0:a01:203::a247:2ddd", id="Teredo, server 10.1.2.3"),
        pytest.param("::1", id="loopback"),
        pytest.param("fd00::1", id="unique local"),
        pytest.param("fe80::1", id="link-local"),
    ],
)
def test_an_ipv6_address_reaching_a_non_global_ipv4_one_is_refused(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UrlRefused, match="private, loopback or reserved"):
        endpoint_url_resolve(f"https://[{address}]/hook")
    # The same address given by a name server, among public ones.
    scripted_dns(monkeypatch, "mixed.example", PUBLIC_V4, address)
    shown = re.escape(str(ipaddress.ip_address(address)))
    with pytest.raises(UrlRefused, match=f"mixed.example is a .*{shown}"):
        endpoint_url_resolve("https://mixed.example/hook")


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("::ffff:93.184.216.34", id="IPv4-mapped public"),
        pytest.param("2002:5db8:d822::1", id="6to4 of a public address"),
        pytest.param("64:ff9b::5db8:d822", id="NAT64 of a public address"),
        pytest.param("2606:4700::1111", id="plain public IPv6"),
    ],
)
def test_an_ipv6_address_reaching_a_public_ipv4_one_is_allowed(address: str) -> None:
    assert endpoint_url_resolve(f"https://[{address}]/hook") == (
        str(ipaddress.ip_address(address)),
    )


def test_a_name_gives_the_attempt_every_address_it_checked_once_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted_dns(monkeypatch, "hooks.example", "2606:4700::1111", PUBLIC_V4, PUBLIC_V4)
    assert endpoint_url_resolve("https://hooks.example/hook") == ("2606:4700::1111", PUBLIC_V4)


def test_with_private_addresses_allowed_nothing_is_resolved_or_pinned(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = True

    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("resolved")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    assert endpoint_url_resolve("http://localhost:8000/hook") is None
