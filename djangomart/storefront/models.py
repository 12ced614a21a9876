"""The brand a shop owner sets in the admin (Storefront > Brand settings): one row.
Every field left empty falls back to its environment variable (storefront.brand)."""

from django.core.validators import RegexValidator
from django.db import models

from djangomart.core.colours import COLOUR_PATTERN

COLOUR = RegexValidator(COLOUR_PATTERN, "A colour such as #1f2937 (#rgb or #rrggbb).")
LOGO_MAX_BYTES = 512 * 1024


class BrandSettings(models.Model):
    """The storefront's (and the emails') look. A singleton: pk is always 1."""

    shop_name = models.CharField(
        max_length=100, blank=True, help_text="Empty: the SHOP_NAME environment variable."
    )
    logo = models.BinaryField(
        blank=True,
        editable=False,
        help_text="PNG, JPEG or WebP, at most 512 KB; served by the app at /brand/logo.",
    )
    logo_content_type = models.CharField(max_length=20, blank=True, editable=False)
    primary_color = models.CharField(
        max_length=7,
        blank=True,
        validators=[COLOUR],
        help_text="Header and text accents. Empty: SHOP_PRIMARY_COLOR.",
    )
    accent_color = models.CharField(
        max_length=7,
        blank=True,
        validators=[COLOUR],
        help_text="Buttons and links. Empty: SHOP_ACCENT_COLOR.",
    )
    footer_text = models.CharField(max_length=500, blank=True, help_text="Empty: SHOP_FOOTER_TEXT.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "brand settings"
        verbose_name_plural = "brand settings"
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="brand_singleton")]

    def __str__(self) -> str:
        return "Brand settings"
