"""Webhook delivery, signed exactly as Stripe signs (`Stripe-Signature: t=<unix>,v1=<hex
HMAC-SHA256 of "<t>.<payload>" with the endpoint secret>`), retried with exponential
backoff, and misbehaving on purpose as the Config says."""

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from stripe_sandbox.config import Config
from stripe_sandbox.store import StripeObject, new_id

logger = logging.getLogger(__name__)

MAX_EXTRA_COPIES = 4
LOG_SIZE = 200_000


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


@dataclass
class Endpoint:
    url: str
    secret: str
    id: str = field(default_factory=lambda: new_id("we"))

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "url": self.url}


@dataclass
class Delivery:
    event: StripeObject
    payload: bytes
    endpoint: Endpoint
    copy: int  # 0 for the original, 1.. for deliberate duplicates
    attempts: int = 0


class Dispatcher:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - misbehaviour, not security
        self.endpoints: list[Endpoint] = []
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self.pending = 0
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Deliveries waiting for a slot (paused, or parallel_deliveries in flight), first
        # come first served. A freed slot wakes only the next waiter: waking them all (a
        # Condition's notify_all) costs O(backlog) per delivery, O(backlog^2) in total.
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Event id -> ids of the endpoints it was sent to that have not answered 2xx yet
        # (pending, failing or abandoned): what GET /v1/events?delivery_success= and the
        # event's `pending_webhooks` say. Events delivered everywhere are not kept.
        self.undelivered: dict[str, set[str]] = {}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            headers={"User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    def add_endpoint(self, url: str, secret: str) -> Endpoint:
        endpoint = Endpoint(url=url, secret=secret)
        self.endpoints.append(endpoint)
        return endpoint

    def settings_changed(self) -> None:
        """Called after a config change: reseed, and wake deliveries waiting for a slot
        (unpaused, or more parallel deliveries allowed)."""
        if self.config.seed is not None:
            self.rng.seed(self.config.seed)
        self._hand_out_slots()

    # -- scheduling ------------------------------------------------------------------

    def on_event(self, event: StripeObject, endpoints: list[Endpoint] | None = None) -> None:
        """Store listener: schedules the event's deliveries, duplicates included."""
        targets = self.endpoints if endpoints is None else endpoints
        if targets:
            waiting = self.undelivered.setdefault(event["id"], set())
            waiting.update(endpoint.id for endpoint in targets)
            event["pending_webhooks"] = len(waiting)
        payload = json.dumps(event, indent=2).encode()
        for endpoint in targets:
            copies = 1
            while copies <= MAX_EXTRA_COPIES and self.rng.random() < self.config.duplicate_rate:
                copies += 1
            for copy in range(copies):
                self._schedule(Delivery(event, payload, endpoint, copy))

    def _schedule(self, delivery: Delivery) -> None:
        config = self.config
        delay = self.rng.uniform(config.delay_min, config.delay_max)
        delay += self.rng.uniform(0, config.reorder_window)
        self.pending += 1
        self._idle.clear()
        self._spawn(self._deliver(delivery, delay))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _slot_free(self) -> bool:
        return not self.config.paused and self.in_flight < self.config.parallel_deliveries

    async def _acquire_slot(self) -> None:
        if not self._waiters and self._slot_free():
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by _hand_out_slots, which has taken the slot for us
        except asyncio.CancelledError:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):  # _hand_out_slots may have dropped it
                    self._waiters.remove(waiter)
            else:
                self._release_slot()  # handed a slot while being cancelled: pass it on
            raise

    def _release_slot(self) -> None:
        self.in_flight -= 1
        self._hand_out_slots()

    def _hand_out_slots(self) -> None:
        while self._waiters and self._slot_free():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    # -- delivery --------------------------------------------------------------------

    async def _deliver(self, delivery: Delivery, delay: float) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            while True:
                delivered = await self._attempt(delivery)
                if delivered:
                    return
                if delivery.attempts >= self.config.max_attempts:
                    self._record(delivery, "abandoned", None, None, 0.0)
                    return
                backoff = self.config.retry_base * 2 ** (delivery.attempts - 1)
                await asyncio.sleep(min(backoff, self.config.retry_max))
        finally:
            self.pending -= 1
            if self.pending == 0:
                self._idle.set()

    async def _attempt(self, delivery: Delivery) -> bool:
        await self._acquire_slot()
        try:
            delivery.attempts += 1
            if delivery.attempts <= self.config.fail_first_attempts:
                self._record(delivery, "forced_failure", None, None, 0.0)
                return False
            return await self._send(delivery)
        finally:
            self._release_slot()

    async def _send(self, delivery: Delivery) -> bool:
        assert self._session is not None
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(delivery.payload, delivery.endpoint.secret, int(time.time())),
        }
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=self.config.delivery_timeout)
        try:
            async with self._session.post(
                delivery.endpoint.url, data=delivery.payload, headers=headers, timeout=timeout
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            self._record(delivery, "timeout", None, "timed out", time.perf_counter() - started)
            return False
        except aiohttp.ClientError as exc:
            self._record(
                delivery,
                "error",
                None,
                str(exc) or type(exc).__name__,
                time.perf_counter() - started,
            )
            return False
        ok = 200 <= status < 300
        self._record(
            delivery, "delivered" if ok else "failed", status, None, time.perf_counter() - started
        )
        if ok:
            self._delivered(delivery)
        return ok

    def _delivered(self, delivery: Delivery) -> None:
        event = delivery.event
        waiting = self.undelivered.get(event["id"])
        if waiting is None:
            return
        waiting.discard(delivery.endpoint.id)
        event["pending_webhooks"] = len(waiting)
        if not waiting:
            del self.undelivered[event["id"]]

    def delivery_success(self, event_id: str) -> bool:
        """Whether every endpoint the event was sent to has answered one of its
        deliveries with a 2xx (Stripe's `delivery_success`; true for an event sent to no
        endpoint)."""
        return event_id not in self.undelivered

    def _record(
        self,
        delivery: Delivery,
        outcome: str,
        status: int | None,
        error: str | None,
        seconds: float,
    ) -> None:
        self.log.append(
            {
                "event": delivery.event["id"],
                "type": delivery.event["type"],
                "endpoint": delivery.endpoint.url,
                "copy": delivery.copy,
                "attempt": delivery.attempts,
                "outcome": outcome,
                "status": status,
                "error": error,
                "duration_ms": round(seconds * 1000, 2),
                "at": time.time(),
            }
        )
        if outcome not in ("delivered",):
            logger.info(
                "webhook %s %s attempt %d: %s %s",
                delivery.event["type"],
                delivery.event["id"],
                delivery.attempts,
                outcome,
                status or error or "",
            )

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
