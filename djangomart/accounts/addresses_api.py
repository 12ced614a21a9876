"""The customer's address book (`/api/v1/me/addresses`, docs/addresses.md): list,
create, read, partial update, delete, mark default. Every operation needs a logged-in
customer and sees only their addresses: anyone else's id is a 404 `address_not_found`,
exactly like an unknown one, and nothing changes."""

from datetime import datetime
from typing import Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import StrictBool

from djangomart.accounts.addresses import (
    MAX_ADDRESSES_PER_CUSTOMER,
    AddressCity,
    AddressCountry,
    AddressIn,
    AddressLine1,
    AddressLine2,
    AddressName,
    AddressPhone,
    AddressPostalCode,
    AddressRegion,
    address_create,
    address_default_set,
    address_delete,
    address_get,
    address_list,
    address_update,
)
from djangomart.accounts.customers import CUSTOMER_AUTH, customer_required
from djangomart.accounts.models import Address
from djangomart.api.schemas import error_responses

router = Router(tags=["me"], auth=CUSTOMER_AUTH)


class AddressCreateIn(AddressIn):
    # Strict: `0` or `"yes"` is refused, as the schema's `boolean` says.
    is_default: StrictBool = Field(
        False,
        description="Make it the default address (the customer's first address always is).",
    )


# The default of a PATCH field: "not sent" (model_dump(exclude_unset=True) leaves it
# out). Typed Any because it is never a value: a sent null is refused as not a string.
_NOT_SENT: Any = None


def _no_null_defaults(schema: dict[str, Any]) -> None:
    # Absent means "unchanged"; the fields are strings, never null, so the schema shows
    # no `default: null`.
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class AddressPatchIn(Schema):
    """The fields to change; absent ones stay as they are. The rules are those of a new
    address (an optional field is cleared with an empty string)."""

    model_config = {"json_schema_extra": _no_null_defaults}

    name: AddressName = _NOT_SENT
    line1: AddressLine1 = _NOT_SENT
    line2: AddressLine2 = _NOT_SENT
    city: AddressCity = _NOT_SENT
    postal_code: AddressPostalCode = _NOT_SENT
    region: AddressRegion = _NOT_SENT
    country: AddressCountry = _NOT_SENT
    phone: AddressPhone = _NOT_SENT


class AddressOut(Schema):
    id: UUID
    name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    region: str
    country: str = Field(description="ISO 3166-1 alpha-2, uppercase.")
    phone: str
    # Strict: `0` or `"yes"` is refused, as the schema's `boolean` says.
    is_default: StrictBool = Field(description="The customer's default address (at most one).")
    created_at: datetime
    updated_at: datetime


def address_out(address: Address) -> AddressOut:
    return AddressOut(
        id=address.id,
        name=address.name,
        line1=address.line1,
        line2=address.line2,
        city=address.city,
        postal_code=address.postal_code,
        region=address.region,
        country=address.country,
        phone=address.phone,
        is_default=address.is_default,
        created_at=address.created_at,
        updated_at=address.updated_at,
    )


_NOT_FOUND = {404: {"description": "`address_not_found`: no such address of yours."}}
_LIMIT = {
    409: {
        "description": f"`address_limit_reached`: the book holds {MAX_ADDRESSES_PER_CUSTOMER} "
        "addresses already."
    }
}


@router.get("/me/addresses", response={200: list[AddressOut], **error_responses(401)})
def addresses_list(request: HttpRequest) -> list[AddressOut]:
    """The customer's addresses: the default first, then the newest first (at most
    50, so no paging)."""
    customer = customer_required(request)
    return [address_out(a) for a in address_list(customer=customer)]


@router.post(
    "/me/addresses",
    response={201: AddressOut, **error_responses(401, 403, 409, 422)},
    openapi_extra={"responses": _LIMIT},
)
def addresses_create(request: HttpRequest, body: AddressCreateIn) -> Status[AddressOut]:
    """Saves an address. The first one becomes the default."""
    customer = customer_required(request)
    address = address_create(customer=customer, data=body, is_default=body.is_default)
    return Status(201, address_out(address))


@router.get(
    "/me/addresses/{address_id}",
    response={200: AddressOut, **error_responses(401, 404, 422)},
    openapi_extra={"responses": _NOT_FOUND},
)
def addresses_detail(request: HttpRequest, address_id: UUID) -> AddressOut:
    customer = customer_required(request)
    return address_out(address_get(customer=customer, address_id=address_id))


@router.patch(
    "/me/addresses/{address_id}",
    response={200: AddressOut, **error_responses(401, 403, 404, 422)},
    openapi_extra={"responses": _NOT_FOUND},
)
def addresses_update(request: HttpRequest, address_id: UUID, body: AddressPatchIn) -> AddressOut:
    """Changes the fields sent. Orders already placed keep the address they were given."""
    customer = customer_required(request)
    changes = body.model_dump(exclude_unset=True)
    return address_out(address_update(customer=customer, address_id=address_id, changes=changes))


@router.delete(
    "/me/addresses/{address_id}",
    response={204: None, **error_responses(401, 403, 404, 422)},
    openapi_extra={"responses": _NOT_FOUND},
)
def addresses_delete(request: HttpRequest, address_id: UUID) -> Status[None]:
    """Deletes the address; orders keep their copy. When it was the default, the newest
    remaining address becomes the default."""
    customer = customer_required(request)
    address_delete(customer=customer, address_id=address_id)
    return Status(204, None)


@router.post(
    "/me/addresses/{address_id}/default",
    response={200: AddressOut, **error_responses(401, 403, 404, 422)},
    openapi_extra={"responses": _NOT_FOUND},
)
def addresses_default_set(request: HttpRequest, address_id: UUID) -> AddressOut:
    """Makes this address the default (and no other)."""
    customer = customer_required(request)
    return address_out(address_default_set(customer=customer, address_id=address_id))
