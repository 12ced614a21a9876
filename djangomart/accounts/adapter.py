"""allauth's adapters: DjangoMart's brand in every email allauth sends, and the links in
those emails leading back to where the customer took the step."""

from typing import Any
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.headless.adapter import DefaultHeadlessAdapter
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from djangomart.storefront.brand import brand_current


def _on_public_url(url: str, request: HttpRequest | None) -> str:
    """A link to one of the storefront's account pages that allauth built from the
    request's Host header, moved onto PUBLIC_URL (its path kept, as everywhere PUBLIC_URL
    + path is used): a verification or reset key, or any link of a mail anyone can have
    sent to any address (the unknown-account mail), goes only to the shop's own address,
    whatever Host a request came with (ALLOWED_HOSTS may admit several names). Links to
    another frontend (HEADLESS_FRONTEND_URLS) are not the storefront's pages: left as
    they are."""
    parts = urlsplit(url)
    if (
        request is None
        or parts.scheme not in ("http", "https")
        or parts.netloc != request.get_host()
        or not parts.path.startswith(reverse("storefront:home") + "account/")
    ):
        return url
    query = f"?{parts.query}" if parts.query else ""
    return settings.PUBLIC_URL.rstrip("/") + parts.path + query


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth is untyped
    def format_email_subject(self, subject: str) -> str:
        return f"[{brand_current().shop_name}] {subject}"

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        # Every mail allauth sends comes through here: its links too (activate_url,
        # password_reset_url, signup_url).
        request = getattr(self, "request", None)
        context = {
            **{
                key: _on_public_url(value, request) if isinstance(value, str) else value
                for key, value in context.items()
            },
            "shop_name": brand_current().shop_name,
            "frontend_url": settings.FRONTEND_URL or settings.PUBLIC_URL,
        }
        super().send_mail(template_prefix, email, context)


class HeadlessAdapter(DefaultHeadlessAdapter):  # type: ignore[misc]  # allauth is untyped
    def get_frontend_url(self, urlname: str, **kwargs: Any) -> str | None:
        """HEADLESS_FRONTEND_URLS for a step taken through the headless API; None for one
        taken on the storefront's own pages (allauth's views), so that allauth links to
        its view of the step on this server: a customer who signed up on the storefront
        verifies there, even when FRONTEND_URL names another frontend."""
        allauth_state = getattr(self.request, "allauth", None)
        if getattr(allauth_state, "headless", None) is None:
            return None
        return super().get_frontend_url(urlname, **kwargs)  # type: ignore[no-any-return]
