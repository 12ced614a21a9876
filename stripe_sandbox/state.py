"""The one object handlers share: store, config and webhook dispatcher."""

import random
from dataclasses import dataclass, field

from aiohttp import web

from stripe_sandbox.config import Config
from stripe_sandbox.flows import Context
from stripe_sandbox.store import Store
from stripe_sandbox.webhooks import Dispatcher


@dataclass
class Sandbox:
    config: Config
    store: Store
    dispatcher: Dispatcher
    rng: random.Random = field(default_factory=random.Random)

    def reconfigure(self, changes: dict[str, object]) -> None:
        self.config.update(changes)
        if self.config.seed is not None:
            self.rng.seed(self.config.seed)
        self.dispatcher.settings_changed()


SANDBOX = web.AppKey("sandbox", Sandbox)
# Per-request values the API middleware hands to the /v1 handlers.
PARAMS = web.RequestKey("params", dict)
CONTEXT = web.RequestKey("context", Context)


def sandbox_of(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]
