"""Idle carts are deleted by a periodic job: guest carts after CART_GUEST_IDLE_DAYS,
customer carts after CART_CUSTOMER_IDLE_DAYS, in bounded batches."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from procrastinate.contrib.django import app as procrastinate_app

from djangomart.carts.models import Cart, CartLine
from djangomart.carts.services import carts_idle_delete
from djangomart.carts.tasks import carts_idle_delete_task
from djangomart.catalog.models import Variant
from tests.carts.conftest import customer_make
from tests.conftest import make_product
from tests.payments.conftest import jobs_run


def idle_cart(days: float, *, customer: bool = False, status: str = "open") -> Cart:
    owner = customer_make(f"c{Cart.objects.count()}@example.com") if customer else None
    cart = Cart.objects.create(
        customer=owner, token_hash=None if customer else f"{Cart.objects.count():064d}",
        status=status,
    )  # fmt: skip
    CartLine.objects.create(
        cart=cart, variant=Variant.objects.get(sku="TEE-M"), quantity=1, unit_price=2000
    )
    Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now() - timedelta(days=days))
    return cart


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("queued_jobs_removed")
def test_the_periodic_job_deletes_guest_carts_after_30_days_and_customer_carts_after_90() -> None:
    make_product("classic-tee", variants=[("TEE-M", 2000, 10)])
    gone = [idle_cart(31), idle_cart(31, status="closed"), idle_cart(91, customer=True)]
    kept = [idle_cart(29), idle_cart(89, customer=True), idle_cart(0)]

    procrastinate_app.configure_task(name=carts_idle_delete_task.name).defer(
        timestamp=int(time.time())
    )
    jobs_run()
    assert set(Cart.objects.values_list("pk", flat=True)) == {c.pk for c in kept}
    assert not CartLine.objects.filter(cart_id__in=[c.pk for c in gone]).exists()

    registered = procrastinate_app.periodic_registry.periodic_tasks.values()
    periodic = {task.task.name: task.cron for task in registered}
    assert periodic["carts_idle_delete"] == "17 3 * * *"


@pytest.mark.django_db
def test_idle_carts_are_deleted_in_bounded_batches(settings: object) -> None:
    make_product("classic-tee", variants=[("TEE-M", 2000, 10)])
    for _ in range(5):
        idle_cart(40)
    assert carts_idle_delete(batch_size=2, max_batches=2) == 4
    assert Cart.objects.count() == 1
    assert carts_idle_delete(batch_size=2) == 1
    assert not Cart.objects.exists()
