"""The endpoint admin hides the signing secret from staff who may only view endpoints
(admin.py get_fields / secret_masked), but its changelist still filters on the secret:
Django's ModelAdmin.lookup_allowed lets any local field be a querystring lookup, so
`?secret__startswith=whsec_3` lists the endpoint when the secret starts so and lists
nothing otherwise. A view-only staff member reads the whole secret back, 4 requests a
hex digit (256 in all), and can then forge signed events to the shop's receivers."""

from typing import Any

import pytest
from django.test import Client

from tests.notify.webhooks.conftest import endpoint_make
from tests.notify.webhooks.test_admin import staff_with

pytestmark = pytest.mark.django_db

LIST = "/admin/notify_webhooks/webhookendpoint/"
HEX = "0123456789abcdef"


def test_view_only_staff_cannot_read_the_secret_back_through_changelist_lookups(
    settings: Any,
) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False
    endpoint = endpoint_make("https://93.184.215.14/hook")
    viewer = staff_with("view_webhookendpoint")
    # The page itself hides it (what the fix does).
    page = viewer.get(f"{LIST}{endpoint.pk}/change/").content.decode()
    assert endpoint.secret[6:-4] not in page

    def listed(regex: str) -> bool:
        response = viewer.get(LIST, {"secret__regex": regex})
        if response.status_code != 200:  # the lookup refused: nothing to learn
            return False
        return f"{LIST}{endpoint.pk}/change/" in response.content.decode()

    recovered = "whsec_"
    for _ in range(64):
        candidates = HEX
        while len(candidates) > 1:  # binary search on the next digit
            low = candidates[: len(candidates) // 2]
            candidates = low if listed(f"^{recovered}[{low}]") else candidates[len(low) :]
        recovered += candidates
        if not listed(f"^{recovered}"):
            break  # the oracle does not answer: the secret is safe

    assert recovered != endpoint.secret, (
        "a staff member with only view_webhookendpoint read the full signing secret "
        "back through ?secret__regex= on the endpoints list"
    )


def test_view_only_staff_get_no_answer_from_a_secret_lookup(settings: Any) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False
    endpoint = endpoint_make("https://93.184.215.14/hook")
    viewer: Client = staff_with("view_webhookendpoint")
    row = f"{LIST}{endpoint.pk}/change/"

    right = viewer.get(LIST, {"secret__startswith": endpoint.secret[:7]})
    wrong_digit = "0" if endpoint.secret[6] != "0" else "1"
    wrong = viewer.get(LIST, {"secret__startswith": "whsec_" + wrong_digit})

    # Either the lookup is refused, or it does not tell the right prefix from a wrong one.
    answered = right.status_code == 200 and wrong.status_code == 200
    listed_right, listed_wrong = row in right.content.decode(), row in wrong.content.decode()
    assert not (answered and listed_right != listed_wrong), (
        f"the endpoints list answers whether the secret starts with a given prefix "
        f"(listed for the right one: {listed_right}, for a wrong one: {listed_wrong})"
    )
