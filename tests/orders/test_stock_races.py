"""Stock under concurrency, with real threads (one database connection each) through
the real API and admin: the last unit is sold once, and checkouts, releases and the
product admin's save, all locking the same variants, never deadlock."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client

from djangomart.catalog.models import Product, StockMovement, Variant
from djangomart.catalog.services import variants_lock
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from tests.conftest import make_product
from tests.orders.conftest import checkout_body, checkout_post
from tests.payments.race_helpers import held_transaction, lock_waiters_wait, race
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)


# -- Oversell ---------------------------------------------------------------------------


def test_buyers_racing_for_the_last_unit_get_one_order_and_clean_409s(
    sandbox: SandboxServer,
) -> None:
    make_product("poster", variants=[("POSTER-A2", 900, 1)])
    variant = Variant.objects.get(sku="POSTER-A2")
    buyers = 8
    one = checkout_body(lines=[{"sku": "POSTER-A2", "quantity": 1}])

    def buy() -> Any:
        return checkout_post(Client(), one)

    # Every buyer reaches the variant while another transaction holds its row: they
    # all read "1 available" at the same moment unless checkout locks the row before
    # it reads. Then the hold ends and they proceed together.
    starter = ThreadPoolExecutor(1)
    with held_transaction(lambda: variants_lock([variant.pk])):
        answers_future = starter.submit(race, [buy] * buyers)
        lock_waiters_wait(buyers)
    answers = answers_future.result(120)
    starter.shutdown()

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * (buyers - 1), [a.content for a in answers]
    for refused in (a.json() for a in answers if a.status_code == 409):
        assert refused == {
            "code": "out_of_stock",
            "message": "POSTER-A2 is out of stock.",
            "sku": "POSTER-A2",
            "available": 0,
        }
    variant.refresh_from_db()
    assert (variant.on_hand, variant.reserved, variant.available) == (1, 1, 0)
    assert Order.objects.count() == 1


# -- No deadlock ------------------------------------------------------------------------


def _pending_order(client: Client, lines: list[tuple[str, int]]) -> str:
    body = checkout_body(lines=[{"sku": sku, "quantity": q} for sku, q in lines])
    response = checkout_post(client, body)
    assert response.status_code == 201, response.content
    return str(response.json()["order"]["id"])


def _release(order_ids: list[str]) -> None:
    """Cancels several orders in one transaction (as a staff bulk action or a
    reconciliation batch would): orders locked first, then each one's variants."""
    with transaction.atomic():
        for order in orders_lock(UUID(i) for i in order_ids).values():
            transitions.apply(order, Order.Status.CANCELED, message="test release")


def _admin_save_data(product: Product, round_no: int) -> dict[str, str]:
    """The product page's POST, variants in the page's order (position, which here is
    the reverse of primary-key order), with a price change and a restock on each."""
    variants = list(product.variants.order_by("position", "pk"))
    data = {
        "name": product.name,
        "slug": product.slug,
        "description": product.description,
        "category": str(product.category_id),
        "active": "on",
        "image_urls": "",
        "variants-TOTAL_FORMS": str(len(variants)),
        "variants-INITIAL_FORMS": str(len(variants)),
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
    }
    for n, v in enumerate(variants):
        data.update({
            f"variants-{n}-id": str(v.pk),
            f"variants-{n}-product": str(product.pk),
            f"variants-{n}-position": str(v.position),
            f"variants-{n}-sku": v.sku,
            f"variants-{n}-label": v.label,
            f"variants-{n}-price": str(1000 + round_no),
            f"variants-{n}-currency": v.currency,
            f"variants-{n}-active": "on",
            f"variants-{n}-stock_change": "1",
            f"variants-{n}-stock_reason": "restock",
            f"variants-{n}-stock_note": "",
            f"variants-{n}-stock_token": str(uuid4()),  # a fresh page each round
        })  # fmt: skip
    return data


def test_checkouts_releases_and_admin_saves_on_the_same_variants_never_deadlock(
    sandbox: SandboxServer,
) -> None:
    product = make_product("kit", variants=[("KIT-A", 1000, 500), ("KIT-B", 1000, 500)])
    a, b = product.variants.order_by("pk")
    # The admin page lists B before A: its forms run in the reverse of the pk order.
    Variant.objects.filter(pk=a.pk).update(position=1)
    Variant.objects.filter(pk=b.pk).update(position=0)
    staff = User.objects.create_superuser("stock-staff", "s@example.com", "pw-for-tests")
    client = Client()
    rounds = 6

    for round_no in range(rounds):
        to_release = [
            _pending_order(client, [("KIT-A", 1), ("KIT-B", 1)]),
            _pending_order(client, [("KIT-B", 2), ("KIT-A", 2)]),
        ]
        admin = Client()
        admin.force_login(staff)
        data = _admin_save_data(product, round_no)

        def admin_save(admin: Client = admin, data: dict[str, str] = data) -> Any:
            return admin.post(f"/admin/catalog/product/{product.pk}/change/", data)

        def release(ids: list[str] = to_release) -> None:
            _release(ids)

        calls: list[Callable[[], Any]] = [
            lambda: checkout_post(Client(), checkout_body(lines=[
                {"sku": "KIT-A", "quantity": 1}, {"sku": "KIT-B", "quantity": 1}])),
            lambda: checkout_post(Client(), checkout_body(lines=[
                {"sku": "KIT-B", "quantity": 1}, {"sku": "KIT-A", "quantity": 1}])),
            release,
            admin_save,
        ]  # fmt: skip
        checkout_ab, checkout_ba, _, saved = race(calls)  # a deadlock error would raise
        assert (checkout_ab.status_code, checkout_ba.status_code) == (201, 201)
        assert saved.status_code == 302, saved.content[:3000]

    for variant in Variant.objects.filter(product=product):
        movements = StockMovement.objects.filter(variant=variant)
        held = sum(
            line.quantity
            for order in Order.objects.filter(status="pending", lines__variant=variant)
            for line in order.lines.filter(variant=variant)
        )
        assert variant.on_hand == 500 + rounds  # one restock per admin save
        assert variant.on_hand == sum(m.delta for m in movements)
        assert variant.reserved == held == 2 * rounds
        assert variant.price == 1000 + rounds - 1
