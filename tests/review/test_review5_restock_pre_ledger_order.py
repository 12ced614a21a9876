"""ceb2e11 limits a return to stock to what the stock ledger says the order took off
the shelf (orders/returns.py _check_taken, catalog/selectors.py order_stock_taken: its
`sale` movements minus its `return` ones). The ledger only exists since catalog 0002/0003:
an order paid before the upgrade had its units taken off `stock_on_hand` (now `on_hand`)
with no `sale` row, and 0003 opens the ledger with the on-hand count left after those
sales. Such an order did sell its units, the customer can send them back, and before
ceb2e11 a refund's restock put them back on the shelf; now every return of it is refused
(409 `return_exceeds_sold`, returnable 0), as if it had been a held late payment.

The database is taken back to catalog 0001 with Django's MigrationExecutor, a paid order
is written with the historical models as the old code left it, the migrations are
applied again, and the return goes through orders.returns.stock_return (the one rule of
every return to stock) under the order's lock (slow: one test)."""

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from djangomart.catalog.models import StockMovement, Variant
from djangomart.orders.locks import orders_lock
from djangomart.orders.returns import stock_return

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_LEDGER = ("catalog", "0001_initial")
SKU = "LEGACY-MUG"


@pytest.fixture
def schema_restored() -> Iterator[None]:
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _old_paid_order() -> UUID:
    """A paid order of 2 x SKU as the code before the stock ledger left it: 10 units were
    on hand, the sale took 2 off `stock_on_hand`, and no ledger row exists."""
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE_LEDGER])
    executor = MigrationExecutor(connection)
    applied = list(executor.loader.applied_migrations or {})
    old = executor.loader.project_state(applied).apps
    category = old.get_model("catalog", "Category").objects.create(name="Mugs", slug="legacy-mugs")
    product = old.get_model("catalog", "Product").objects.create(
        category=category, name="Legacy mug", slug="legacy-mug"
    )
    variant = old.get_model("catalog", "Variant").objects.create(
        product=product, sku=SKU, price=1000, stock_on_hand=10 - 2
    )
    order = old.get_model("orders", "Order").objects.create(
        email="buyer@example.com", status="paid", payment_status="paid", currency="usd",
        subtotal=2000, total=2000, amount_paid=2000,
        expires_at=timezone.now() - timedelta(days=30),
        success_url="http://localhost:3000/ok", cancel_url="http://localhost:3000/cancel",
    )  # fmt: skip
    old.get_model("orders", "OrderLine").objects.create(
        order=order, variant=variant, sku=SKU, name="Legacy mug", unit_price=1000,
        quantity=2, line_total=2000,
    )  # fmt: skip
    return UUID(str(order.pk))


@pytest.mark.usefixtures("schema_restored")
def test_a_return_of_an_order_paid_before_the_stock_ledger_goes_back_to_stock() -> None:
    order_id = _old_paid_order()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert Variant.objects.get(sku=SKU).on_hand == 8  # the sale was counted before

    with transaction.atomic():
        order = orders_lock([order_id])[order_id]
        returned = stock_return(order, [(SKU, 1)], staff_user=None, note="customer sent 1 back")

    assert [r["quantity"] for r in returned] == [1]
    assert Variant.objects.get(sku=SKU).on_hand == 9
    assert StockMovement.objects.filter(order_id=order_id, reason="return").count() == 1
