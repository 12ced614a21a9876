"""Accounts: customers' saved addresses and staff API tokens."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

# The longest value of each address field (djangomart/accounts/addresses.py validates
# input against these; docs/addresses.md lists them).
ADDRESS_NAME_MAX_LENGTH = 200
ADDRESS_LINE_MAX_LENGTH = 200
ADDRESS_CITY_MAX_LENGTH = 100
ADDRESS_POSTAL_CODE_MAX_LENGTH = 20
ADDRESS_REGION_MAX_LENGTH = 100
ADDRESS_PHONE_MAX_LENGTH = 32


class Address(models.Model):
    """One address of a customer's address book (`/api/v1/me/addresses`). Checkout copies
    it into the order (Order.shipping_address): editing or deleting it later never
    changes an order. The id is a UUID so that ids cannot be enumerated; at most one
    address per customer is the default (a partial unique constraint)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="addresses"
    )
    name = models.CharField(max_length=ADDRESS_NAME_MAX_LENGTH)
    line1 = models.CharField(max_length=ADDRESS_LINE_MAX_LENGTH)
    line2 = models.CharField(max_length=ADDRESS_LINE_MAX_LENGTH, blank=True)
    city = models.CharField(max_length=ADDRESS_CITY_MAX_LENGTH)
    postal_code = models.CharField(max_length=ADDRESS_POSTAL_CODE_MAX_LENGTH, blank=True)
    region = models.CharField(max_length=ADDRESS_REGION_MAX_LENGTH, blank=True)
    # ISO 3166-1 alpha-2, uppercase (djangomart/accounts/countries.py).
    country = models.CharField(max_length=2)
    phone = models.CharField(max_length=ADDRESS_PHONE_MAX_LENGTH, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_default", "-created_at", "pk"]
        verbose_name_plural = "addresses"
        indexes = [models.Index(fields=["customer", "created_at"], name="address_customer_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"], condition=Q(is_default=True), name="address_one_default"
            ),
            models.CheckConstraint(
                condition=Q(country__regex=r"^[A-Z]{2}$"), name="address_country_alpha2"
            ),
            models.CheckConstraint(
                condition=~Q(name="") & ~Q(line1="") & ~Q(city=""),
                name="address_required_not_blank",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}, {self.line1}, {self.city} ({self.country})"


class StaffApiToken(models.Model):
    """A bearer token for the staff API (`Authorization: Bearer <token>`), acting as its
    user with that user's permissions. Only a SHA-256 of the token is stored: the token
    itself is shown once, by `manage.py staff_token create`. Revoking keeps the row, so
    the admin still shows who held it and when it was last used."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    # The token's first characters, to tell tokens apart in the admin and in logs.
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "staff API token"
        constraints = [
            models.CheckConstraint(
                condition=Q(key_hash__regex=r"^[0-9a-f]{64}$"), name="staffapitoken_hash_sha256"
            ),
        ]

    def __str__(self) -> str:
        state = " (revoked)" if self.revoked_at else ""
        return f"{self.prefix}… for {self.user}{state}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
