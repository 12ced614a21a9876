"""allauth's adapters: DjangoMart's brand in every email allauth sends, and the links in
those emails leading back to where the customer took the step."""

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.headless.adapter import DefaultHeadlessAdapter
from django.conf import settings
from django.http import HttpRequest

from djangomart.storefront.brand import brand_current


def _on_public_url(url: str, request: HttpRequest | None) -> str:
    """A link allauth built from the request's Host header, moved onto PUBLIC_URL: a
    verification or reset key goes only to the shop's own address, whatever Host a
    request came with (ALLOWED_HOSTS may admit several names). A link to another
    frontend (HEADLESS_FRONTEND_URLS) is left as it is."""
    parts = urlsplit(url)
    if request is None or parts.netloc != request.get_host():
        return url
    public = urlsplit(settings.PUBLIC_URL)
    return urlunsplit((public.scheme, public.netloc, parts.path, parts.query, parts.fragment))


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth is untyped
    def get_reset_password_from_key_url(self, key: str) -> str:
        return _on_public_url(super().get_reset_password_from_key_url(key), self.request)

    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: Any) -> str:
        url = super().get_email_confirmation_url(request, emailconfirmation)
        return _on_public_url(url, request)

    def format_email_subject(self, subject: str) -> str:
        return f"[{brand_current().shop_name}] {subject}"

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        context = {
            **context,
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
