"""Schemas of the customer's own API (`/api/v1/me`, djangomart/accounts/me_api.py).
Named `Me...`: OpenAPI component names are global."""

from datetime import datetime

from ninja import Field, Schema

from djangomart.orders.schemas import OrderOut


class MeOut(Schema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": 42,
                    "email": "ada@example.com",
                    "email_verified": True,
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "date_joined": "2026-01-31T12:00:00Z",
                }
            ]
        }
    }

    id: int
    email: str = Field(description="The login email (its changes go through allauth).")
    email_verified: bool = Field(
        description="The email was confirmed through allauth's verification email."
    )
    first_name: str
    last_name: str
    date_joined: datetime


class MeDeleteIn(Schema):
    model_config = {"json_schema_extra": {"examples": [{"password": "the-current-password"}]}}

    # Optional in the schema so that a missing password is the same 403 as a wrong one
    # (reauthentication_failed), not a 422 that tells it apart.
    password: str = Field(
        "", max_length=4096, description="The account's current password (re-authentication)."
    )


class MeOrderListParams(Schema):
    # The catalog's pagination (GET /api/v1/products): same names, bounds and defaults.
    page: int = Field(1, ge=1, le=10_000)
    page_size: int = Field(20, ge=1, le=100)


class MeOrderOut(OrderOut):
    """An order of the history: the order API's `OrderOut` and when it was placed."""

    created_at: datetime = Field(description="When the order was placed (checkout).")


class MeOrderPageOut(Schema):
    items: list[MeOrderOut] = Field(description="Newest first.")
    count: int = Field(description="The customer's orders, on all pages.")
    page: int
    page_size: int
