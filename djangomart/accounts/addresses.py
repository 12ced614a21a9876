"""The customer's address book and the address an order ships to (docs/addresses.md).

Services write, selectors read; every one takes the customer and finds an address only
among that customer's own, so that someone else's address id is `address_not_found`
(404) exactly like an unknown one, and nothing changes.

Input is one set of rules, `AddressIn`, used by `POST /me/addresses`, `PATCH` (field
by field), and an inline address at checkout (`CheckoutIn.address`, and the cart
checkout's body): every string stripped of surrounding whitespace, at most its length,
no NUL or other control character; `name`, `line1`, `city` and `country` required;
`country` an ISO 3166-1 alpha-2 code (`de` is read as `DE`); `phone` optional, digits,
spaces, `+` (first only), `-` and parentheses, with 6 to 20 digits. The JSON Schema of
each field says the same, so that generated clients refuse what the server refuses.

Writes to one customer's address book are serialized by a lock on the customer's user
row (only these services take it, and they lock nothing else), so that the address
limit and "at most one default" hold under concurrent requests; the database's partial
unique constraint is the last word on the default."""

import re
from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from ninja import Field, Schema
from pydantic import AfterValidator, BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from djangomart.accounts.countries import COUNTRY_CODES
from djangomart.accounts.customers import CustomerRequired
from djangomart.accounts.models import (
    ADDRESS_CITY_MAX_LENGTH,
    ADDRESS_LINE_MAX_LENGTH,
    ADDRESS_NAME_MAX_LENGTH,
    ADDRESS_PHONE_MAX_LENGTH,
    ADDRESS_POSTAL_CODE_MAX_LENGTH,
    ADDRESS_REGION_MAX_LENGTH,
    Address,
)
from djangomart.core.errors import DomainError

# How many addresses one customer may keep: enough for any household, few enough that
# the list needs no paging and an account cannot be used to store junk.
MAX_ADDRESSES_PER_CUSTOMER = 50

# The keys of an order's shipping_address snapshot, in this order.
SNAPSHOT_FIELDS = ("name", "line1", "line2", "city", "postal_code", "region", "country", "phone")
# Fields that may not be empty.
REQUIRED_FIELDS = frozenset({"name", "line1", "city", "country"})


class AddressNotFound(DomainError):
    status = 404
    code = "address_not_found"
    default_message = "No such address in your address book."


class AddressLimitReached(DomainError):
    status = 409
    code = "address_limit_reached"
    default_message = (
        f"An address book holds at most {MAX_ADDRESSES_PER_CUSTOMER} addresses: delete one first."
    )


class InvalidAddress(DomainError):
    """An address refused by the rules above, shaped as every validation error (422,
    `details` naming each bad input by its location, e.g. `address.country`)."""

    status = 422
    code = "validation_error"

    def __init__(self, message: str, *, details: list[dict[str, str]]) -> None:
        super().__init__(message, details=details)


# -- The rules of one field -------------------------------------------------------------

# C0 and C1 control characters (NUL, tab, line breaks, ...): an address field is one line.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_CONTROL_RE = re.compile(f"[{_CONTROL}]")
# The JSON Schema patterns: any text without control characters; with at least one
# character that is not whitespace (a required field).
_LINE_PATTERN = rf"^[^{_CONTROL}]*$"
_REQUIRED_PATTERN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
PHONE_MIN_DIGITS = 6
PHONE_MAX_DIGITS = 20


def _country_pattern() -> str:
    """Exactly the codes of COUNTRY_CODES, in either case, spaces around allowed: one
    character class of second letters per first letter (`[Aa][DdEeFf...]|[Bb]...`), so
    that the schema refuses `AA` as the server does."""
    by_first: dict[str, list[str]] = {}
    for code in sorted(COUNTRY_CODES):
        by_first.setdefault(code[0], []).append(code[1])
    either = "".join
    branches = "|".join(
        f"[{first}{first.lower()}][{either(c + c.lower() for c in seconds)}]"
        for first, seconds in by_first.items()
    )
    return f"^ *(?:{branches}) *$"


# Country and phone are checked as sent (spaces around them allowed, then stripped),
# with the very pattern the JSON Schema shows.
_COUNTRY_PATTERN = _country_pattern()
_COUNTRY_RE = re.compile(_COUNTRY_PATTERN)
# Empty, or an optional leading + and 6 to 20 digits, each followed by any separators.
_PHONE_PATTERN = rf"^ *(?:\+?[ ()-]*(?:[0-9][ ()-]*){{{PHONE_MIN_DIGITS},{PHONE_MAX_DIGITS}}})?$"
_PHONE_RE = re.compile(_PHONE_PATTERN)


def _line(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "Must not contain NUL characters")
    if _CONTROL_RE.search(value):
        raise PydanticCustomError(
            "control_character", "Must be one line, without tabs or other control characters"
        )
    return value.strip()


def _required(value: str) -> str:
    value = _line(value)
    if not value:
        raise PydanticCustomError("blank", "Must not be blank")
    return value


def _country(value: str) -> str:
    _line(value)  # NUL and control characters: their own errors
    if not _COUNTRY_RE.fullmatch(value):
        raise PydanticCustomError(
            "country_code", "Must be an ISO 3166-1 alpha-2 country code, such as DE or US"
        )
    return value.strip(" ").upper()


def _phone(value: str) -> str:
    _line(value)
    if not _PHONE_RE.fullmatch(value):
        raise PydanticCustomError(
            "phone_number",
            f"Must be a phone number: {PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits, with "
            "spaces, -, parentheses and a leading + allowed",
        )
    return value.strip(" ")


def _text_field(max_length: int, description: str, *, required: bool) -> Any:
    return Field(
        min_length=1 if required else None,
        max_length=max_length,
        description=description,
        json_schema_extra={"pattern": _REQUIRED_PATTERN if required else _LINE_PATTERN},
    )


# The length bounds apply to the text as sent (as the JSON Schema states them), the
# "blank" rule to the text stripped.
AddressName = Annotated[
    str,
    _text_field(ADDRESS_NAME_MAX_LENGTH, "The recipient's name.", required=True),
    AfterValidator(_required),
]
AddressLine1 = Annotated[
    str,
    _text_field(ADDRESS_LINE_MAX_LENGTH, "Street and number.", required=True),
    AfterValidator(_required),
]
AddressLine2 = Annotated[
    str,
    _text_field(ADDRESS_LINE_MAX_LENGTH, "Apartment, floor, c/o; may be empty.", required=False),
    AfterValidator(_line),
]
AddressCity = Annotated[
    str,
    _text_field(ADDRESS_CITY_MAX_LENGTH, "City or town.", required=True),
    AfterValidator(_required),
]
AddressPostalCode = Annotated[
    str,
    _text_field(
        ADDRESS_POSTAL_CODE_MAX_LENGTH,
        "Postal code as the country writes it; may be empty.",
        required=False,
    ),
    AfterValidator(_line),
]
AddressRegion = Annotated[
    str,
    _text_field(
        ADDRESS_REGION_MAX_LENGTH, "State, province or county; may be empty.", required=False
    ),
    AfterValidator(_line),
]
AddressCountry = Annotated[
    str,
    Field(
        min_length=2,
        max_length=8,
        description="ISO 3166-1 alpha-2 code (`DE`, `US`, `GB`); lowercase is accepted and "
        "stored uppercase.",
        json_schema_extra={"pattern": _COUNTRY_PATTERN},
    ),
    AfterValidator(_country),
]
AddressPhone = Annotated[
    str,
    Field(
        max_length=ADDRESS_PHONE_MAX_LENGTH,
        description=f"Optional: {PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits, with spaces, "
        "`-`, parentheses and a leading `+` (e.g. `+49 30 1234567`); empty for none.",
        json_schema_extra={"pattern": _PHONE_PATTERN},
    ),
    AfterValidator(_phone),
]


class AddressIn(Schema):
    """A postal address as a client sends it: to save in the address book, or inline at
    checkout (djangomart.orders.schemas re-exports it for the checkout bodies)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Ada Lovelace",
                    "line1": "Unter den Linden 1",
                    "line2": "",
                    "city": "Berlin",
                    "postal_code": "10117",
                    "region": "",
                    "country": "DE",
                    "phone": "+49 30 1234567",
                }
            ]
        }
    }

    name: AddressName
    line1: AddressLine1
    line2: AddressLine2 = ""
    city: AddressCity
    postal_code: AddressPostalCode = ""
    region: AddressRegion = ""
    country: AddressCountry
    phone: AddressPhone = ""


def address_input_validate(
    address: AddressIn | BaseModel | Mapping[str, Any], *, location: str = "address"
) -> AddressIn:
    """`address` checked against AddressIn's rules: an AddressIn as is, anything else
    (a dict, another schema with the same fields) validated. Raises InvalidAddress, its
    `details` located under `location` (`address.country`)."""
    if isinstance(address, AddressIn):
        return address
    data = address.model_dump() if isinstance(address, BaseModel) else dict(address)
    try:
        return AddressIn.model_validate(data)
    except PydanticValidationError as exc:
        details = [
            {
                "location": ".".join([location, *(str(part) for part in err["loc"])]),
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        first = details[0]
        raise InvalidAddress(
            f"Invalid {first['location']}: {first['message']}.", details=details
        ) from None


# -- Selectors ----------------------------------------------------------------------------


def address_list(*, customer: User) -> QuerySet[Address]:
    """The customer's addresses: the default first, then the newest first."""
    return Address.objects.filter(customer=customer).order_by("-is_default", "-created_at", "pk")


def address_get(*, customer: User, address_id: UUID) -> Address:
    """The customer's own address `address_id`; AddressNotFound for anyone else's or an
    unknown one (the two are not told apart)."""
    address = Address.objects.filter(pk=address_id, customer=customer).first()
    if address is None:
        raise AddressNotFound()
    return address


def address_snapshot(address: Address | AddressIn) -> dict[str, str]:
    """What an order keeps of an address: a plain copy of its fields (SNAPSHOT_FIELDS),
    no reference to the address book row."""
    return {field: str(getattr(address, field)) for field in SNAPSHOT_FIELDS}


def address_snapshot_for_checkout(
    *,
    customer: User | None,
    address_id: UUID | None,
    address: AddressIn | BaseModel | Mapping[str, Any] | None,
) -> dict[str, str] | None:
    """The shipping address a checkout stores on its order (Order.shipping_address):
    from the customer's saved address `address_id`, or from an inline `address`
    (validated with AddressIn's rules), or None when neither is given (digital goods;
    clients that send none).

    Raises InvalidAddress (422) when both are given or the inline address is invalid;
    CustomerRequired (401 not_authenticated) for an `address_id` without a logged-in
    customer; AddressNotFound (404 address_not_found) for an id that is not one of the
    customer's own. Reads only; call it before the checkout's transaction."""
    if address_id is not None and address is not None:
        message = "Send either address_id (a saved address) or address (inline), not both."
        raise InvalidAddress(
            message,
            details=[{"location": "address_id", "message": message, "type": "value_error"}],
        )
    if address_id is not None:
        if customer is None:
            raise CustomerRequired(
                "address_id names a saved address: log in first, or send the address inline."
            )
        return address_snapshot(address_get(customer=customer, address_id=address_id))
    if address is not None:
        return address_snapshot(address_input_validate(address))
    return None


# -- Services ---------------------------------------------------------------------------


def _address_book_lock(customer: User) -> None:
    """Serializes writes to the customer's address book until the transaction ends (a
    lock on the user row: see the module's docstring). Inside atomic(). Raises
    CustomerRequired when the account is no longer active: a write that waited for the
    account's deletion (which holds this lock) must not save personal data into it."""
    active = (
        User.objects.filter(pk=customer.pk).select_for_update().values_list("is_active", flat=True)
    ).first()
    if not active:
        raise CustomerRequired()


def _default_clear(customer: User) -> None:
    Address.objects.filter(customer=customer, is_default=True).update(is_default=False)


@transaction.atomic
def address_create(*, customer: User, data: AddressIn, is_default: bool = False) -> Address:
    """A new address in the customer's book. The customer's first address becomes the
    default, as does one created with `is_default`. Raises AddressLimitReached (409)
    beyond MAX_ADDRESSES_PER_CUSTOMER."""
    _address_book_lock(customer)
    count = Address.objects.filter(customer=customer).count()
    if count >= MAX_ADDRESSES_PER_CUSTOMER:
        raise AddressLimitReached()
    make_default = is_default or count == 0
    if make_default:
        _default_clear(customer)
    address = Address(customer=customer, is_default=make_default, **address_snapshot(data))
    address.full_clean()
    address.save()
    return address


@transaction.atomic
def address_update(*, customer: User, address_id: UUID, changes: Mapping[str, Any]) -> Address:
    """Changes some fields (`changes`: field -> new value, already validated one by one
    with AddressIn's rules) of the customer's address. Orders that shipped to it keep
    their snapshot. Raises AddressNotFound, or InvalidAddress for a required field set
    to null."""
    unknown = set(changes) - set(SNAPSHOT_FIELDS)
    if unknown:
        raise ValueError(f"Not address fields: {sorted(unknown)}")
    _address_book_lock(customer)
    address = address_get(customer=customer, address_id=address_id)
    for field, value in changes.items():
        if value is None:
            if field in REQUIRED_FIELDS:
                message = f"{field} is required and cannot be null."
                raise InvalidAddress(
                    message, details=[{"location": field, "message": message, "type": "blank"}]
                )
            value = ""
        setattr(address, field, value)
    address.full_clean()
    address.save()
    return address


@transaction.atomic
def address_delete(*, customer: User, address_id: UUID) -> None:
    """Deletes the customer's address; orders keep their snapshot. When it was the
    default, the newest remaining address becomes the default (none when it was the
    last). Raises AddressNotFound."""
    _address_book_lock(customer)
    address = address_get(customer=customer, address_id=address_id)
    address.delete()
    if address.is_default:
        newest = Address.objects.filter(customer=customer).order_by("-created_at", "pk").first()
        if newest is not None:
            newest.is_default = True
            newest.save(update_fields=["is_default", "updated_at"])


@transaction.atomic
def address_default_set(*, customer: User, address_id: UUID) -> Address:
    """Makes the customer's address their default (and no other). Raises
    AddressNotFound."""
    _address_book_lock(customer)
    address = address_get(customer=customer, address_id=address_id)
    if not address.is_default:
        _default_clear(customer)
        address.is_default = True
        address.save(update_fields=["is_default", "updated_at"])
    return address
