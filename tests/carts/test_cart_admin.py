"""The Cart admin is read-only, with the lines inline."""

import pytest
from django.test import Client

from tests.carts.conftest import CartClient

pytestmark = pytest.mark.django_db

Guest = tuple[CartClient, str]


def test_staff_see_a_cart_and_its_lines_but_cannot_add_change_or_delete(
    guest: Guest, staff_client: Client
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    listing = staff_client.get("/admin/carts/cart/")
    assert listing.status_code == 200
    assert cart_id in listing.content.decode()
    page = staff_client.get(f"/admin/carts/cart/{cart_id}/change/")
    assert page.status_code == 200
    assert "TEE-M" in page.content.decode()
    assert staff_client.get("/admin/carts/cart/add/").status_code == 403
    assert staff_client.post(f"/admin/carts/cart/{cart_id}/delete/").status_code == 403
