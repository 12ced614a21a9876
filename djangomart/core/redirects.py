"""The one rule for where Stripe may send customers back (success_url / cancel_url): used
by checkout for a client's own URLs and by settings.py, at start, for the default ones.
Plain Python, so that the settings module can import it before Django is set up."""

from collections.abc import Collection
from enum import Enum
from urllib.parse import urlsplit


class RedirectProblem(Enum):
    # Not an absolute http(s) URL that browsers and urlsplit read alike.
    NOT_ABSOLUTE = "not_absolute"
    # A character outside ASCII: clients percent-encode them (RFC 3986), as the OpenAPI
    # schema's pattern says; browsers and Stripe could encode a raw one differently.
    NOT_ASCII = "not_ascii"
    # On a host that is not allowed.
    OTHER_HOST = "other_host"


def redirect_url_problem(url: str, hosts: Collection[str]) -> RedirectProblem | None:
    """What is wrong with `url` as a return address on one of `hosts` (lowercase), or None.
    URLs that browsers and urlsplit could read differently (user info, backslashes,
    control characters) are refused outright, as are URLs urlsplit cannot read."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number 0-65535)
    except ValueError:
        hostname = None
    if not url.isascii():
        return RedirectProblem.NOT_ASCII
    if (
        hostname is None
        or parts.scheme not in ("http", "https")
        or "@" in parts.netloc
        or "\\" in url
        or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url)
    ):
        return RedirectProblem.NOT_ABSOLUTE
    if hostname.lower() not in hosts:
        return RedirectProblem.OTHER_HOST
    return None
