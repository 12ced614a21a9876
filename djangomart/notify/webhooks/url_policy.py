"""Which URLs an endpoint may have: the SSRF stance (docs/webhooks-outbound.md, "Which
URLs are allowed").

The admin is staff-only, but whoever configures an endpoint makes the shop's workers POST
to it and stores the answer's first bytes where staff read them: pointed at the shop's
own network (the database, a cloud metadata service, an internal admin), that is a
server-side request forgery. So, unless OUTBOUND_WEBHOOK_ALLOW_PRIVATE (on with DEBUG):
https only, and the host must resolve to public addresses only, checked when the
endpoint is saved and again before every attempt (a name can change what it points to).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


class UrlRefused(Exception):
    """The URL may not be posted to; the message says why."""


def endpoint_url_check(url: str) -> None:
    """Raises UrlRefused unless `url` is one DjangoMart may POST to (see the module).
    Resolves the host name (DNS) when private addresses are not allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("Give an http(s) URL with a host name.")
    if parts.username or parts.password:
        raise UrlRefused("Credentials in the URL are not allowed; the signature authenticates.")
    if settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE:
        return
    if parts.scheme != "https":
        raise UrlRefused("The URL must be https (http only with OUTBOUND_WEBHOOK_ALLOW_PRIVATE).")
    for address in _addresses(parts.hostname, parts.port or 443):
        if not address.is_global:
            raise UrlRefused(
                f"{parts.hostname} is a private, loopback or reserved address ({address}); "
                "only public hosts are allowed (OUTBOUND_WEBHOOK_ALLOW_PRIVATE)."
            )


def endpoint_url_validate(url: str) -> None:
    """endpoint_url_check as a Django validator (the model's and admin form's)."""
    try:
        endpoint_url_check(url)
    except UrlRefused as exc:
        raise ValidationError(str(exc), code="url_refused") from exc


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UrlRefused(f"{host} does not resolve ({exc}).") from exc
    # The scope of an IPv6 link-local address ("fe80::1%eth0") is not part of it.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
