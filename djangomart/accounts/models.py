"""Accounts: staff API tokens (customers and addresses come with the storefront API)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


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
