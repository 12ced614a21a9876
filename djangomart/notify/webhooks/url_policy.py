"""Which URLs an endpoint may have: the SSRF stance (docs/webhooks-outbound.md, "Which
URLs are allowed").

The admin is staff-only, but whoever configures an endpoint makes the shop's workers POST
to it and stores the answer's first bytes where staff read them: pointed at the shop's
own network (the database, a cloud metadata service, an internal admin), that is a
server-side request forgery. So, unless OUTBOUND_WEBHOOK_ALLOW_PRIVATE (on with DEBUG):
https only, and the host must resolve to public addresses only, checked when the
endpoint is saved and again before every attempt (a name can change what it points to).
The attempt then connects to one of the addresses checked, never to a second lookup's
answer (sender.py): a name server that answers a public address to the check and a
private one to the connection (DNS rebinding) gets nothing through.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 addresses that a translator or a tunnel delivers to the IPv4 address inside them:
# they may be posted to only if that IPv4 address may be. ipaddress knows the mapped,
# 6to4 and Teredo forms; these two it does not.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated, still routed by some stacks
# RFC 8215's local-use translation prefix: by definition the shop's own translator, which
# reaches whatever IPv4 network it was set up for. Python 3.11 still calls it global.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


class UrlRefused(Exception):
    """The URL may not be posted to; the message says why."""


def endpoint_url_check(url: str) -> None:
    """Raises UrlRefused unless `url` is one DjangoMart may POST to (see the module).
    Resolves the host name (DNS) when private addresses are not allowed."""
    endpoint_url_resolve(url)


def endpoint_url_resolve(url: str) -> tuple[str, ...] | None:
    """endpoint_url_check, returning the addresses it checked: the only ones an attempt
    may connect to. None when OUTBOUND_WEBHOOK_ALLOW_PRIVATE is on (nothing resolved,
    the connection resolves the name as usual)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError past 65535, which URL validators let through
    except ValueError as exc:
        raise UrlRefused(f"This URL cannot be read ({exc}).") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("Give an http(s) URL with a host name.")
    if parts.username or parts.password:
        raise UrlRefused("Credentials in the URL are not allowed; the signature authenticates.")
    if settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE:
        return None
    if parts.scheme != "https":
        raise UrlRefused("The URL must be https (http only with OUTBOUND_WEBHOOK_ALLOW_PRIVATE).")
    addresses = _addresses(parts.hostname, port or 443)
    if not addresses:
        raise UrlRefused(f"{parts.hostname} does not resolve (no address).")
    for address in addresses:
        if not address_is_public(address):
            raise UrlRefused(
                f"{parts.hostname} is a private, loopback or reserved address ({address}); "
                "only public hosts are allowed (OUTBOUND_WEBHOOK_ALLOW_PRIVATE)."
            )
    return tuple(dict.fromkeys(str(address) for address in addresses))


def endpoint_url_validate(url: str) -> None:
    """endpoint_url_check as a Django validator (the model's and admin form's)."""
    try:
        endpoint_url_check(url)
    except UrlRefused as exc:
        raise ValidationError(str(exc), code="url_refused") from exc


def address_is_public(address: Address) -> bool:
    """Whether an endpoint may be at `address`: a global one, and, for an IPv6 address
    that carries an IPv4 one, a global IPv4 address in it too."""
    # Multicast is not an endpoint (and Python counts some of it as global).
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    if address in _LOCAL_NAT64:
        return False
    return all(inner.is_global for inner in _embedded_ipv4(address))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)  # the Teredo server and the client behind its NAT
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        # UnicodeError: a name IDNA cannot encode (a label over 63 characters encoded).
        raise UrlRefused(f"{host} does not resolve ({exc}).") from exc
    # The scope of an IPv6 link-local address ("fe80::1%eth0") is not part of it.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
