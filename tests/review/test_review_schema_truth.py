"""Review of issue 7, section 5: "the schema says what the server enforces". The live
OpenAPI schema's pattern for success_url / cancel_url refuses non-ASCII characters;
the server stores such a URL and sends it to Stripe."""

import re

import pytest
from django.test import Client

from djangomart.orders.models import Order
from tests.orders.conftest import checkout_body, checkout_post, goods
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["goods", "sandbox", "stripe_settings"]

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("field", ["success_url", "cancel_url"])
def test_a_redirect_url_that_the_schema_refuses_is_refused_by_the_server(
    goods: None, sandbox: SandboxServer, field: str
) -> None:
    client = Client()
    schema = client.get("/api/v1/openapi.json").json()
    prop = schema["components"]["schemas"]["CheckoutIn"]["properties"][field]
    pattern = next(b["pattern"] for b in prop["anyOf"] if b.get("type") == "string")
    url = "http://localhost:3000/gr\u00fc\u00dfe"  # an allowed host, a non-ASCII path
    assert re.search(pattern, url) is None  # the schema refuses it

    response = checkout_post(client, checkout_body(**{field: url}))

    assert response.status_code == 422, (response.status_code, response.json())
    assert not Order.objects.exists()
