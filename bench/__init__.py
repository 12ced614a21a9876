"""DjangoMart's benchmarks: `make bench` (or `python -m bench [NAME...]`).

A benchmark is an async function returning a Result, registered with @register.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    name: str
    value: float
    unit: str
    target: float
    higher_is_better: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    # Set when the run itself went wrong (errors, lost deliveries): fails whatever the value.
    error: str | None = None

    @property
    def passed(self) -> bool:
        if self.error is not None:
            return False
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 2),
            "unit": self.unit,
            "target": self.target,
            "higher_is_better": self.higher_is_better,
            "passed": self.passed,
            "error": self.error,
            "details": self.details,
        }


Benchmark = Callable[[], Awaitable[Result]]

REGISTRY: dict[str, Benchmark] = {}


def register(name: str) -> Callable[[Benchmark], Benchmark]:
    def decorator(benchmark: Benchmark) -> Benchmark:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        REGISTRY[name] = benchmark
        return benchmark

    return decorator
