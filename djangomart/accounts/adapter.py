"""allauth's account adapter: DjangoMart's brand in every email allauth sends."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth is untyped
    def format_email_subject(self, subject: str) -> str:
        return f"[{settings.SHOP_NAME}] {subject}"

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        context = {
            **context,
            "shop_name": settings.SHOP_NAME,
            "frontend_url": settings.FRONTEND_URL or settings.PUBLIC_URL,
        }
        super().send_mail(template_prefix, email, context)
