from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from djangomart.accounts.models import Address, StaffApiToken
from djangomart.accounts.services import (
    NAME_MAX_LENGTH,
    StaffTokenRefused,
    staff_token_create,
    staff_token_revoke,
)


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class TokenCreateForm(forms.Form):
    """A token for yourself; a superuser may pick any active staff user."""

    user = forms.ModelChoiceField(queryset=User.objects.none(), required=False)
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        required=False,
        help_text="What the token is for (e.g. “support desk”).",
    )

    def __init__(self, *args: Any, request_user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["user"]
        assert isinstance(field, forms.ModelChoiceField)
        if request_user.is_superuser:
            field.queryset = (
                get_user_model()
                ._default_manager.filter(is_active=True, is_staff=True)
                .order_by("username")
            )
            field.required = True
            field.initial = request_user.pk
            field.help_text = "The token acts as this user, with this user's permissions."
        else:
            del self.fields["user"]


@admin.register(StaffApiToken)
class StaffApiTokenAdmin(admin.ModelAdmin[StaffApiToken]):
    """Tokens are listed and revoked here, never shown: only their hash is stored, and
    the token itself is printed once when it is created (`manage.py staff_token create`,
    or "Add" here, which shows it on the next page only)."""

    list_display = ["user", "name", "prefix_display", "created_at", "last_used_at", "revoked_at"]
    list_filter = [RevokedFilter, "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "name", "prefix"]
    fields = readonly_fields = (
        "user",
        "name",
        "prefix_display",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ["revoke"]

    @admin.display(description="prefix", ordering="prefix")
    def prefix_display(self, token: StaffApiToken) -> str:
        return f"{token.prefix}…"

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[StaffApiToken]) -> None:
        revoked = sum(staff_token_revoke(token) for token in queryset)
        skipped = queryset.count() - revoked
        text = f"{revoked} token(s) revoked; they stop working at once."
        if skipped:
            text += f" {skipped} already revoked."
        messages.success(request, text)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        user = request.user
        assert isinstance(user, User)
        form = TokenCreateForm(request.POST if request.method == "POST" else None,
                               request_user=user)  # fmt: skip
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Create a staff API token",
            "form": form,
            "changelist_url": reverse("admin:accounts_staffapitoken_changelist"),
        }
        if request.method == "POST" and form.is_valid():
            holder = form.cleaned_data.get("user") or user
            try:
                token, row = staff_token_create(holder, form.cleaned_data["name"])
            except StaffTokenRefused as exc:
                messages.error(request, exc.message)
                return HttpResponseRedirect(context["changelist_url"])
            self.log_addition(request, row, [{"added": {}}])
            context.update(token=token, row=row, title="Staff API token created")
        response = TemplateResponse(request, "admin/accounts/staffapitoken/add.html", context)
        # The page with the token must not stay in any cache.
        add_never_cache_headers(response)
        return response

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and getattr(request.user, "is_staff", False)

    def has_change_permission(self, request: HttpRequest, obj: StaffApiToken | None = None) -> bool:
        # Nothing of a token is edited here; "change" is the permission to revoke.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: StaffApiToken | None = None) -> bool:
        return False  # revoke instead: the row keeps who held it and when it was used


@admin.register(Address)
class AddressAdmin(admin.ModelAdmin[Address]):
    """Customers' saved addresses, to read: customers keep them through the API
    (`/api/v1/me/addresses`), whose services keep "one default" and the limit. An
    order's address is its own copy (on the order's page), whatever happens here."""

    list_display = ["customer", "name", "line1", "city", "country", "is_default", "created_at"]
    list_filter = ["is_default", "country"]
    list_select_related = ["customer"]
    search_fields = [
        "customer__username",
        "customer__email",
        "name",
        "line1",
        "city",
        "postal_code",
    ]
    fields = readonly_fields = (
        "id",
        "customer",
        "name",
        "line1",
        "line2",
        "city",
        "postal_code",
        "region",
        "country",
        "phone",
        "is_default",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Address | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Address | None = None) -> bool:
        return False
