"""Review 7 (storefront): the storefront's HTML 400 page fails when the error happens
before AuthenticationMiddleware has run. An unknown Host (DisallowedHost, raised by
CommonMiddleware) on a /shop/ path goes to core/errors.py bad_request, which renders
storefront/error.html through base.html; its header's cart count (context_processors.
cart -> cart_session.cart_units -> request.user) has no request.user yet, so the
handler itself raises and the answer is the 500 page, logged as an internal error, for
every scanner that sends a wrong Host. The API's paths answer their JSON 400."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_an_unknown_host_on_a_shop_page_is_a_400_page() -> None:
    client = Client(HTTP_HOST="evil.example", raise_request_exception=False)

    response = client.get("/shop/")

    assert response.status_code == 400
    assert "This request could not be read" in response.content.decode()


def test_the_api_answers_the_same_request_with_its_json_400() -> None:
    # The control: the same request off the storefront is a clean 400.
    client = Client(HTTP_HOST="evil.example", raise_request_exception=False)
    assert client.get("/api/v1/products").status_code == 400
