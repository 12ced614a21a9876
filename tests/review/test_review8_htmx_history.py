"""Review 8 (issue 12): the listing's htmx search pushes its URL into the history
(listing.html: hx-push-url="true"), so htmx itself asks the server for that URL again
when the page is not in its history cache (back/forward after a reload, or past
htmx.config.historySize): htmx 2.0.10 (the one django-htmx serves) sends that request
with HX-Request: true *and* HX-History-Restore-Request: true, and swaps the answer into
<body>. views_catalog.listing answers any HX-Request with the bare product grid, so
the restored page loses its header, search form, heading and footer. And as the same
URL answers a fragment or a page depending on a request header, it must say so
(Vary: HX-Request), or the browser's cache can hand the fragment to a normal
navigation (back button) too."""

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]


def test_an_htmx_history_restore_of_a_searched_listing_gets_the_whole_page(
    client: Client,
) -> None:
    response = client.get(
        "/shop/products/",
        {"q": "tee", "sort": "price"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/shop/",
    )
    html = response.content.decode()
    assert response.status_code == 200
    # What htmx puts into <body>: the page's header and search form, not only the grid.
    assert 'class="site-header"' in html, html[:300]
    assert 'id="product-grid"' in html


def test_the_listing_says_it_varies_on_hx_request(client: Client) -> None:
    fragment = client.get("/shop/products/", {"q": "tee"}, HTTP_HX_REQUEST="true")
    page = client.get("/shop/products/", {"q": "tee"})
    assert fragment.content != page.content  # one URL, two bodies
    for response in (fragment, page):
        vary = [v.strip().lower() for v in response.get("Vary", "").split(",")]
        assert "hx-request" in vary, response.get("Vary")
