"""The misbehaviour knobs and delivery settings, changeable at run time."""

import dataclasses
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Config:
    # Webhook delivery
    duplicate_rate: float = (
        0.0  # chance that a delivery is sent once more (repeatedly, up to 4 extra)
    )
    reorder_window: float = (
        0.0  # seconds: each delivery waits a random 0..window, shuffling neighbours
    )
    delay_min: float = 0.0  # seconds before the first attempt, drawn from [delay_min, delay_max]
    delay_max: float = 0.0
    fail_first_attempts: int = 0  # the first N attempts of every delivery fail without being sent
    parallel_deliveries: int = 4  # attempts in flight at once, across all events
    paused: bool = False  # an outage: deliveries wait until unpaused (events are still listed)
    retry_base: float = 2.0  # seconds; attempt n waits retry_base * 2**(n-1), capped by retry_max
    retry_max: float = 3600.0
    max_attempts: int = 8  # then the delivery is abandoned, as Stripe stops after 3 days
    delivery_timeout: float = 10.0  # seconds to wait for the endpoint's answer
    # REST API
    api_latency_min: float = 0.0  # seconds added to every /v1 request, drawn from [min, max]
    api_latency_max: float = 0.0
    api_error_rate: float = 0.0  # chance of a 500 before the request is processed
    api_timeout_rate: float = 0.0  # chance that a request is processed but never answered
    api_timeout_seconds: float = 5.0  # how long such a request hangs before the connection drops
    # Money movement
    refund_mode: str = (
        "succeeded"  # "pending": refunds wait for /_sandbox/refunds/{id}/succeed|fail
    )
    seed: int | None = None  # random seed, for reproducible misbehaviour

    def update(self, changes: dict[str, Any]) -> None:
        """Applies `changes` after validating all of them; raises ValueError naming the bad key."""
        known = {f.name: f for f in fields(self)}
        validated: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting: {key}")
            validated[key] = _coerce(key, known[key].type, value)
        candidate = dataclasses.replace(self, **validated)
        candidate.check()
        for key, value in validated.items():
            setattr(self, key, value)

    def check(self) -> None:
        for name in ("duplicate_rate", "api_error_rate", "api_timeout_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in (
            "reorder_window",
            "delay_min",
            "delay_max",
            "api_latency_min",
            "api_latency_max",
            "retry_base",
            "retry_max",
            "delivery_timeout",
            "api_timeout_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.delay_max < self.delay_min:
            raise ValueError("delay_max must be >= delay_min")
        if self.api_latency_max < self.api_latency_min:
            raise ValueError("api_latency_max must be >= api_latency_min")
        if self.parallel_deliveries < 1:
            raise ValueError("parallel_deliveries must be at least 1")
        if self.max_attempts < 1 or self.fail_first_attempts < 0:
            raise ValueError("max_attempts must be >= 1 and fail_first_attempts >= 0")
        if self.refund_mode not in ("succeeded", "pending"):
            raise ValueError('refund_mode must be "succeeded" or "pending"')

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(key: str, annotation: Any, value: Any) -> Any:
    try:
        if annotation is bool:
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if annotation is int:
            return int(value)
        if annotation is float:
            return float(value)
        if annotation == int | None:
            return None if value is None else int(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key}: invalid value {value!r}") from exc
