"""docs/webhooks-outbound.md ("Which URLs are allowed") says multicast addresses are
refused, but url_policy.address_is_public trusts ipaddress' `is_global`, which on
Python 3.11 is True for IPv4 multicast (224.0.0.0/4: 224.0.0.1, the administratively
scoped 239/8) and for IPv6 multicast (ff02::1 link-local scope included): such an
endpoint is saved and attempted. (TCP cannot connect to a multicast group, so the harm
is the broken promise, not a request delivered.)"""

from typing import Any

import pytest

from djangomart.notify.webhooks.url_policy import UrlRefused, endpoint_url_resolve
from tests.notify.webhooks.test_url_policy import PUBLIC_V4, scripted_dns


@pytest.fixture(autouse=True)
def _public_only(settings: Any) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("224.0.0.1", id="IPv4 all-hosts (link-local multicast)"),
        pytest.param("239.255.255.250", id="IPv4 administratively scoped (SSDP)"),
        pytest.param("ff02::1", id="IPv6 link-local all-nodes"),
        pytest.param("ff05::2", id="IPv6 site-local all-routers"),
    ],
)
def test_a_multicast_address_is_refused_as_documented(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(UrlRefused, match="private, loopback or reserved"):
        endpoint_url_resolve(f"https://{literal}/hook")
    scripted_dns(monkeypatch, "mixed.example", PUBLIC_V4, address)
    with pytest.raises(UrlRefused, match="private, loopback or reserved"):
        endpoint_url_resolve("https://mixed.example/hook")
