"""The logged-in customer (`/api/v1/me`) and their order history (`/api/v1/me/orders`)."""

from ninja import Router

router = Router(tags=["me"])
