"""Data for the new stock model. Before it, a pending order's units had been taken off
`stock_on_hand` (now `on_hand`): put them back on hand and count them as reserved, so
that paying or releasing those orders works as for new ones. Give variants their
creation order as position, and open the ledger with each variant's on-hand count."""

from django.db import migrations

FORWARD = """
WITH held AS (
    SELECT line.variant_id, SUM(line.quantity) AS quantity
    FROM orders_orderline line JOIN orders_order o ON o.id = line.order_id
    WHERE o.status = 'pending' AND NOT o.stock_released
    GROUP BY line.variant_id
)
UPDATE catalog_variant v
SET on_hand = v.on_hand + held.quantity, reserved = held.quantity
FROM held WHERE held.variant_id = v.id;

UPDATE catalog_variant v SET position = ranked.position
FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY product_id ORDER BY id) - 1 AS position
    FROM catalog_variant
) ranked
WHERE ranked.id = v.id;

INSERT INTO catalog_stockmovement (variant_id, delta, on_hand_after, reason, note, created_at)
SELECT id, on_hand, on_hand, 'adjustment', 'Opening balance of the stock ledger.', NOW()
FROM catalog_variant WHERE on_hand > 0;
"""

BACKWARD = """
DELETE FROM catalog_stockmovement;
UPDATE catalog_variant SET on_hand = on_hand - reserved, reserved = 0;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0002_stock_ledger_position"),
        ("orders", "0001_initial"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
