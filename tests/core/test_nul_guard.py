"""A NUL character in the URL or a header never reaches PostgreSQL (which refuses it in
text): the request is a JSON 400 naming where the NUL was."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kwargs", "location"),
    [
        ({"path": "/api/v1/products/tee%00"}, "path"),
        ({"path": "/api/v1/products", "data": {"q": "a\x00"}}, "query.q"),
        ({"path": "/api/v1/products", "HTTP_COOKIE": "sessionid=a\x00b"}, "header.Cookie"),
        ({"path": "/api/v1/products", "HTTP_X_ANYTHING": "\x00"}, "header.X-Anything"),
    ],
)
def test_a_nul_in_the_url_or_a_header_is_a_400_naming_it(
    client: Client, kwargs: dict, location: str
) -> None:
    response = client.get(**kwargs)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bad_request"
    assert [d["location"] for d in body["details"]] == [location]


def test_the_webhook_is_guarded_too(client: Client) -> None:
    response = client.post("/webhooks/stripe", "{}", content_type="application/json",
                           HTTP_STRIPE_SIGNATURE="t=1,v1=\x00")  # fmt: skip
    assert response.status_code == 400
