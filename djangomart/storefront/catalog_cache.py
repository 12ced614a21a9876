"""The storefront's cached catalog fragments (home, listings) are keyed on a catalog
version kept in the shared cache: a staff edit bumps it (signals), so every process's
next page renders afresh, and the old entries expire unread. Availability shown in a
cached listing may lag sales by CATALOG_CACHE_SECONDS at most; the product page and the
cart read it live."""

from django.core.cache import cache

VERSION_KEY = "storefront:catalog-version"


def catalog_version() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, 1, None)
        version = cache.get(VERSION_KEY, 1)
    return int(version)


def catalog_version_bump() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # not set yet (or evicted): any new value invalidates
        cache.set(VERSION_KEY, catalog_version() + 1, None)
