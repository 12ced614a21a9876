"""Storefront > Brand settings: one page, the singleton row (created on first visit)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from djangomart.storefront.models import LOGO_MAX_BYTES, BrandSettings

# What an uploaded logo may be, by its first bytes (never by its name or claimed type).
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}


def logo_content_type(data: bytes) -> str | None:
    for signature, content_type in SIGNATURES.items():
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class BrandSettingsForm(forms.ModelForm[BrandSettings]):
    logo_upload = forms.FileField(
        label="Logo",
        required=False,
        help_text="PNG, JPEG or WebP, at most 512 KB. Leave empty to keep the current one.",
    )
    logo_remove = forms.BooleanField(label="Remove the logo", required=False)

    class Meta:
        model = BrandSettings
        fields = ["shop_name", "primary_color", "accent_color", "footer_text"]

    def clean_logo_upload(self) -> tuple[bytes, str] | None:
        upload = self.cleaned_data.get("logo_upload")
        if upload is None:
            return None
        if upload.size > LOGO_MAX_BYTES:
            raise forms.ValidationError("The logo must be at most 512 KB.")
        data = upload.read()
        content_type = logo_content_type(data)
        if content_type is None:
            raise forms.ValidationError("The logo must be a PNG, JPEG or WebP image.")
        return data, content_type

    def save(self, commit: bool = True) -> BrandSettings:
        brand = super().save(commit=False)
        upload = self.cleaned_data.get("logo_upload")
        if self.cleaned_data.get("logo_remove"):
            brand.logo, brand.logo_content_type = b"", ""
        elif upload is not None:
            brand.logo, brand.logo_content_type = upload
        if commit:
            brand.save()
        return brand


@admin.register(BrandSettings)
class BrandSettingsAdmin(admin.ModelAdmin[BrandSettings]):
    form = BrandSettingsForm
    fields = [
        "shop_name",
        "logo_upload",
        "logo_remove",
        "primary_color",
        "accent_color",
        "footer_text",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        BrandSettings.objects.get_or_create(pk=1)
        return HttpResponseRedirect(reverse("admin:storefront_brandsettings_change", args=[1]))
