"""The cart API (`/api/v1/carts`, `/api/v1/me/cart`)."""

from ninja import Router

router = Router(tags=["carts"])
