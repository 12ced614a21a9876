"""Reading metrics in tests: a scrape's text as {(sample name, labels): value}, and what a
block added to the test process's own counters (no PROMETHEUS_MULTIPROC_DIR here: the
default registry)."""

from typing import Any

import psycopg
from django.db import connection
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """A sample's value, 0 when the scrape has none (a counter never incremented)."""
    return found.get((name, frozenset(labels.items())), 0.0)


def other_connection() -> "psycopg.Connection[Any]":
    """A second connection to the test database, as another process would hold one."""
    params = connection.get_connection_params()
    own = {k: v for k, v in params.items() if k in {"host", "port", "user", "password", "dbname"}}
    return psycopg.connect(**own, autocommit=True)


class Delta:
    """What a block added to some of this process's samples: `with Delta() as d: ...`
    then d(name, **labels). Counters are process-wide, so tests compare before/after."""

    def __init__(self) -> None:
        self.before = self._now()
        self.after: Samples = {}

    @staticmethod
    def _now() -> Samples:
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in REGISTRY.collect()
            if family.name.startswith("djangomart_")
            for sample in family.samples
        }

    def __enter__(self) -> "Delta":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.after = self._now()

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return self.after.get(key, 0.0) - self.before.get(key, 0.0)

    def changed(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample the block moved (counts and sums, not `_created` times)."""
        return {
            key: after - self.before.get(key, 0.0)
            for key, after in self.after.items()
            if not key[0].endswith("_created") and after != self.before.get(key, 0.0)
        }
