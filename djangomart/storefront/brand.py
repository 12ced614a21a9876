"""The shop's brand as the storefront and the emails use it: the admin's Brand settings
row over the environment's defaults (SHOP_NAME, SHOP_LOGO_URL, SHOP_PRIMARY_COLOR,
SHOP_ACCENT_COLOR, SHOP_FOOTER_TEXT), with colours made readable.

A brand may pick any colours; the pages must still meet WCAG AA contrast (4.5:1 for
text). So the text on a coloured band is black or white, whichever contrasts more, and
a colour used as text on the white page is darkened until it reaches 4.5:1. Read once
per page that shows it (one query of a one-row table: as cheap as the shared cache,
which is the same database by default, and never stale)."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse

from djangomart.storefront.models import BrandSettings

AA_TEXT = 4.5
AA_NON_TEXT = 3.0  # focus rings, borders of controls (WCAG 1.4.11)
WHITE = "#ffffff"
# shop.css's --surface, the lightest background text sits on besides the page's white
# (category cards, the footer): text readable there is readable on white too.
SURFACE = "#f6f6f7"


@dataclass(frozen=True)
class Brand:
    shop_name: str
    logo_url: str  # empty: the name is shown as text
    primary: str
    accent: str
    footer_text: str

    @property
    def on_primary(self) -> str:
        return text_colour_on(self.primary)

    @property
    def on_accent(self) -> str:
        return text_colour_on(self.accent)

    @property
    def accent_text(self) -> str:
        """The accent as a colour for links and text on the page and its surfaces."""
        return readable_on_white(self.accent)

    @property
    def primary_text(self) -> str:
        return readable_on_white(self.primary)

    @property
    def focus(self) -> str:
        """The focus ring: the accent, moved as little as it takes to stand out 3:1
        from the white page and, where one colour can, from the header's band too
        (the header also overrides it with --on-primary, which always can)."""
        return focus_colour(self.accent, self.primary)


def brand_current() -> Brand:
    row: dict[str, Any] = dict(
        BrandSettings.objects.filter(pk=1)
        .values(
            "shop_name",
            "primary_color",
            "accent_color",
            "footer_text",
            "logo_content_type",
            "updated_at",
        )
        .first()
        or {}
    )
    logo_url = settings.SHOP_LOGO_URL
    if row.get("logo_content_type"):
        # The version makes a new logo a new URL, so it can be cached for long.
        version = int(row["updated_at"].timestamp())
        logo_url = f"{reverse('storefront:brand-logo')}?v={version}"
    return Brand(
        shop_name=row.get("shop_name") or settings.SHOP_NAME,
        logo_url=logo_url,
        primary=_hex6(row.get("primary_color") or settings.SHOP_PRIMARY_COLOR),
        accent=_hex6(row.get("accent_color") or settings.SHOP_ACCENT_COLOR),
        footer_text=row.get("footer_text") or settings.SHOP_FOOTER_TEXT,
    )


def _hex6(colour: str) -> str:
    colour = colour.lower()
    if len(colour) == 4:
        colour = "#" + "".join(c * 2 for c in colour[1:])
    return colour


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = _hex6(colour)
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour_on(background: str) -> str:
    return (
        "#000000"
        if contrast(background, "#000000") >= contrast(background, "#ffffff")
        else "#ffffff"
    )


def readable_on_white(colour: str) -> str:
    """`colour`, darkened until text in it reads at 4.5:1 on the page's surfaces."""
    r, g, b = _rgb(colour)
    while contrast(f"#{r:02x}{g:02x}{b:02x}", SURFACE) < AA_TEXT:
        r, g, b = (int(v * 0.9) for v in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def _mix(colour: str, towards: str, share: float) -> str:
    a, b = _rgb(colour), _rgb(towards)
    r, g, bl = (round(x + (y - x) * share) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


def focus_colour(accent: str, band: str) -> str:
    steps = [i / 20 for i in range(21)]
    candidates = [_mix(accent, end, share) for share in steps for end in (WHITE, "#000000")]
    for candidate in candidates:  # the smallest change first
        if contrast(candidate, WHITE) >= AA_NON_TEXT and contrast(candidate, band) >= AA_NON_TEXT:
            return candidate
    return readable_on_white(accent)  # the page first; the header has its own ring
