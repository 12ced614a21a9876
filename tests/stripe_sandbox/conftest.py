from collections.abc import Iterator

import pytest

from tests.stripe_sandbox.harness import Receiver, SandboxServer


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer()
    yield server
    server.stop()


@pytest.fixture
def receiver(sandbox: SandboxServer) -> Iterator[Receiver]:
    """A webhook endpoint registered with the sandbox."""
    endpoint = Receiver()
    sandbox.add_endpoint(endpoint.url)
    yield endpoint
    endpoint.stop()
