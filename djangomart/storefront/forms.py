"""The storefront's forms: shapes only. What makes an address valid, a quantity
allowed or a checkout possible is decided by the services the API uses (accounts.
addresses, carts.services); their refusals come back as messages or field errors."""

from typing import Any
from uuid import UUID

from django import forms
from django.contrib.auth.models import User

from djangomart.accounts import models as account_models
from djangomart.accounts.addresses import InvalidAddress, address_input_validate
from djangomart.accounts.countries import COUNTRIES
from djangomart.accounts.models import Address
from djangomart.payments.checkout import MAX_QUANTITY

SKU_MAX_LENGTH = 64
COUNTRY_CHOICES: list[tuple[str, str]] = sorted(COUNTRIES.items(), key=lambda item: item[1])


class FirstErrorMixin:
    errors: Any

    def first_error(self) -> str:
        for field, errors in self.errors.items():
            label = "" if field == "__all__" else f"{field}: "
            return f"{label}{errors[0]}"
        return "Please check the form."


class CartLineForm(FirstErrorMixin, forms.Form):
    sku = forms.CharField(max_length=SKU_MAX_LENGTH)
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)

    def __init__(self, *args: Any, allow_zero: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if allow_zero:
            self.fields["quantity"] = forms.IntegerField(
                min_value=0, max_value=MAX_QUANTITY, required=False
            )

    def clean_quantity(self) -> int:
        value = self.cleaned_data.get("quantity")
        return 0 if value is None else int(value)


class CheckoutForm(FirstErrorMixin, forms.Form):
    email = forms.EmailField(label="Email", max_length=254, required=False)
    address_id = forms.ChoiceField(label="Ship to", required=False)

    def __init__(
        self, *args: Any, customer: User | None, addresses: list[Address], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if customer is None:
            self.fields["email"].required = True
            del self.fields["address_id"]
        else:
            del self.fields["email"]
            choices = [(str(a.pk), _address_label(a)) for a in addresses]
            field = self.fields["address_id"]
            assert isinstance(field, forms.ChoiceField)
            field.choices = [*choices, ("", "A new address (below)")]
            self.fields["address_id"].initial = choices[0][0] if choices else ""

    def clean_address_id(self) -> UUID | None:
        value = self.cleaned_data.get("address_id")
        return UUID(value) if value else None


def _address_label(address: Address) -> str:
    return (
        f"{address.name}, {address.line1}, {address.postal_code} {address.city}, {address.country}"
    )


class AddressForm(FirstErrorMixin, forms.Form):
    name = forms.CharField(label="Full name", max_length=account_models.ADDRESS_NAME_MAX_LENGTH)
    line1 = forms.CharField(
        label="Street and number", max_length=account_models.ADDRESS_LINE_MAX_LENGTH
    )
    line2 = forms.CharField(
        label="Apartment, floor (optional)",
        max_length=account_models.ADDRESS_LINE_MAX_LENGTH,
        required=False,
    )
    postal_code = forms.CharField(
        label="Postal code",
        max_length=account_models.ADDRESS_POSTAL_CODE_MAX_LENGTH,
        required=False,
    )
    city = forms.CharField(label="City", max_length=account_models.ADDRESS_CITY_MAX_LENGTH)
    region = forms.CharField(
        label="State or region (optional)",
        max_length=account_models.ADDRESS_REGION_MAX_LENGTH,
        required=False,
    )
    country = forms.ChoiceField(label="Country", choices=COUNTRY_CHOICES)
    phone = forms.CharField(
        label="Phone (optional)", max_length=account_models.ADDRESS_PHONE_MAX_LENGTH, required=False
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            return address_input_validate(data, location="address").model_dump()
        except InvalidAddress as exc:
            for detail in exc.extra.get("details", []):
                field = (
                    str(detail["location"]).split(".")[1]
                    if "." in str(detail["location"])
                    else None
                )
                self.add_error(field if field in self.fields else None, str(detail["message"]))
            return data
