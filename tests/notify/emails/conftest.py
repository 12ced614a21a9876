"""The payment engine's fixtures the email tests reuse, and orders whose emails they read."""

from typing import Any

import pytest
from django.core import mail
from prometheus_client import REGISTRY

from tests.payments.conftest import queued_jobs_removed, stripe_settings

__all__ = ["emails_counted", "queued_jobs_removed", "stripe_settings"]


def emails_counted(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("djangomart_emails_total", {"kind": kind, "outcome": outcome})
    return value or 0.0


@pytest.fixture(autouse=True)
def _locmem_mail(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SHOP_NAME = "Acme Tees"
    settings.STAFF_NOTIFY_EMAILS = ["ops@shop.example", "owner@shop.example"]
    mail.outbox = []
