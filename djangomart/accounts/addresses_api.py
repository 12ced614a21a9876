"""The customer's address book (`/api/v1/me/addresses`)."""

from ninja import Router

router = Router(tags=["me"])
