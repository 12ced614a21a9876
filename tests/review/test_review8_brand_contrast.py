"""Review 8 (issue 12): "visible focus, colour contrast at WCAG AA" with any brand
colours. brand.py makes text readable (black or white on a coloured band, the accent
darkened for text on white), but:

- the focus ring is the raw brand accent (shop.css `:focus-visible { outline: 3px solid
  var(--accent) }`), drawn 2 px outside the control: on the white page a light accent
  (the project's own branded journey uses #ffd600) is a ~1.3:1 ring, and in the header
  it sits on --primary, where even the reference colours (#2563eb on #1f2937) give
  2.84:1. WCAG 2.1 AA 1.4.11 (non-text contrast: focus indicators) asks 3:1.
- the category cards are links (colour --accent-text, made 4.5:1 against *white*) on
  --surface (#f6f6f7): a brand accent such as #00a0a0 gives 4.36:1 there, under AA's
  4.5:1 for normal-size text.

The colours are read as a browser resolves them: shop.css's :root, then the page's
inline :root style (the brand), with each rule's var() resolved."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from djangomart.storefront.brand import contrast

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]

NON_TEXT_AA = 3.0
TEXT_AA = 4.5


def _css() -> str:
    path = finders.find("storefront/shop.css")
    assert path is not None
    return Path(path).read_text()


def _declarations(css: str, selector: str) -> dict[str, str]:
    """The declarations of the rule whose selector list is exactly `selector`."""
    found: dict[str, str] = {}
    for selectors, body in re.findall(
        r"([^{}]+)\{([^{}]*)\}", re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    ):
        if [s.strip() for s in selectors.split(",")] == [selector]:
            for decl in body.split(";"):
                if ":" in decl:
                    name, value = decl.split(":", 1)
                    found[name.strip()] = value.strip()
    return found


def _variables(html: str) -> dict[str, str]:
    variables = {k: v for k, v in _declarations(_css(), ":root").items() if k.startswith("--")}
    inline = re.search(r"<style>:root\{([^}]*)\}</style>", html)
    assert inline is not None
    for decl in inline.group(1).split(";"):
        name, value = decl.split(":", 1)
        variables[name.strip()] = value.strip()
    return variables


def _resolve(value: str, variables: dict[str, str]) -> str:
    match = re.search(r"var\((--[\w-]+)\)", value)
    return variables[match.group(1)] if match else value


def _focus_ring(variables: dict[str, str]) -> str:
    outline = _declarations(_css(), ":focus-visible")["outline"]
    colour = re.search(r"(var\(--[\w-]+\)|#[0-9a-fA-F]{3,6})", outline)
    assert colour is not None, outline
    return _resolve(colour.group(1), variables)


def _brand_set(admin_client: Client, **colours: str) -> None:
    response = admin_client.post(
        "/admin/storefront/brandsettings/1/change/",
        {
            "shop_name": "Nordic Tees",
            "footer_text": "",
            "primary_color": "",
            "accent_color": "",
            **colours,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]


def test_the_focus_ring_is_visible_in_the_header_in_the_reference_colours(client: Client) -> None:
    variables = _variables(client.get("/shop/").content.decode())
    ring = _focus_ring(variables)
    header = _resolve(_declarations(_css(), ".site-header")["background"], variables)
    # The header's links, search field and button are focused on this background.
    assert contrast(ring, header) >= NON_TEXT_AA, (ring, header, round(contrast(ring, header), 2))


def test_the_focus_ring_is_visible_on_the_page_with_a_light_brand_accent(
    admin_client: Client, client: Client
) -> None:
    admin_client.get("/admin/storefront/brandsettings/", follow=True)  # creates the row
    _brand_set(admin_client, primary_color="#004d40", accent_color="#ffd600")
    variables = _variables(client.get("/shop/p/classic-tee/").content.decode())
    ring = _focus_ring(variables)
    page = variables["--bg"]
    assert contrast(ring, page) >= NON_TEXT_AA, (ring, page, round(contrast(ring, page), 2))


def test_category_card_text_meets_aa_with_a_brand_accent(
    admin_client: Client, client: Client
) -> None:
    admin_client.get("/admin/storefront/brandsettings/", follow=True)
    _brand_set(admin_client, accent_color="#00a0a0")
    html = client.get("/shop/").content.decode()
    assert 'class="category-card"' in html
    variables = _variables(html)
    card = _declarations(_css(), ".category-card")
    text = _resolve(card.get("color") or _declarations(_css(), "a")["color"], variables)
    background = _resolve(card["background"], variables)
    ratio = contrast(text, background)
    assert ratio >= TEXT_AA, (text, background, round(ratio, 2))
