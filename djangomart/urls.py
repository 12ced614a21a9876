from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from djangomart.api.api import api
from djangomart.core import health
from djangomart.core.metrics_view import metrics
from djangomart.orders.views import checkout_return
from djangomart.payments.webhooks import stripe_webhook

admin.site.site_header = "DjangoMart administration"
# The front page starts with what needs a human today (djangomart/backoffice).
admin.site.index_template = "admin/backoffice_index.html"
# "View site": the storefront when there is one, else what this backend serves people.
admin.site.site_url = settings.FRONTEND_URL or "/api/v1/docs"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus' conventional path, outside the API (and its OpenAPI schema).
    path("metrics", metrics, name="metrics"),
    path("api/v1/", api.urls),
    # Customer accounts (django-allauth headless): /_allauth/{browser,app}/v1/..., and its
    # OpenAPI specification at /_allauth/openapi.json (.html, .yaml).
    path("_allauth/", include("allauth.headless.urls")),
    path("webhooks/stripe", stripe_webhook, name="stripe-webhook"),
    path("checkout/return", checkout_return, name="checkout-return"),
    path("admin/", admin.site.urls),
    # allauth's own pages (signup, login, logout, email verification, password reset),
    # themed as the storefront's (storefront/templates/allauth/).
    path("shop/account/", include("allauth.urls")),
    # The reference storefront (docs/storefront.md); the site's root leads to it.
    path("shop/", include("djangomart.storefront.urls")),
    path("", RedirectView.as_view(pattern_name="storefront:home"), name="root"),
]

handler400 = "djangomart.core.errors.bad_request"
handler403 = "djangomart.core.errors.permission_denied"
handler404 = "djangomart.core.errors.page_not_found"
handler500 = "djangomart.core.errors.server_error"
