"""Refunds from the admin, against the Stripe sandbox over real HTTP: the "Refund" staff
action on the order's page (a form on GET, the refund on POST only, "Can add refund"),
and the Refund list with its "Retry" action for failed refunds."""

import re
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client

from djangomart.orders.models import Order
from djangomart.payments.models import Refund
from djangomart.payments.refund_requests import refund_request
from tests.payments.test_staff_api import charge_of, paid_order, refund_posts, state
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

A_KEY = "8d3c4b1e-0000-4000-8000-000000000000"  # a form's request_key


def refund_page(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/refund/"


def form_fields(page: str) -> dict[str, str]:
    """The refund form's inputs as the page rendered them."""
    fields = dict(re.findall(r'<input type="(?:text|hidden)" name="(\w+)" value="([^"]*)"', page))
    fields.pop("csrfmiddlewaretoken", None)
    return fields


def texts(response: Any) -> list[tuple[int, str]]:
    """The messages for staff after `response`, which are then cleared (as showing them
    on the next page would)."""
    shown = [(m.level, str(m)) for m in get_messages(response.wsgi_request)]
    response.client.cookies.pop("messages", None)
    return shown


def staff_with(username: str, *codenames: str) -> Client:
    user = User.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_the_refund_page_offers_the_whole_refundable_amount_and_a_get_changes_nothing(
    sandbox: SandboxServer, staff_client: Client
) -> None:
    order = paid_order(sandbox)
    before = state(sandbox, order)
    response = staff_client.get(refund_page(order))
    assert response.status_code == 200
    page = response.content.decode()
    fields = form_fields(page)
    assert fields["amount"] == "40.00"
    assert re.fullmatch(r"[0-9a-f-]{36}", fields["request_key"])
    assert "At most 40.00 USD is refundable" in page
    assert 'name="reason"' in page
    assert 'name="note"' in page
    # A link carrying the form's fields only shows the page.
    query = f"amount=10.00&reason=duplicate&request_key={fields['request_key']}"
    again = staff_client.get(f"{refund_page(order)}?{query}")
    assert again.status_code == 200
    assert texts(again) == []
    assert state(sandbox, order) == before


def test_a_post_refunds_at_stripe_once_however_often_the_form_is_sent(
    sandbox: SandboxServer, staff_client: Client
) -> None:
    order = paid_order(sandbox)
    fields = form_fields(staff_client.get(refund_page(order)).content.decode())
    data = {**fields, "amount": "15.00", "reason": "requested_by_customer", "note": "Mug broke"}
    response = staff_client.post(refund_page(order), data)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/orders/order/{order.pk}/change/"
    assert texts(response) == [(messages.SUCCESS, "Refund of 15.00 USD succeeded at Stripe.")]
    refund = Refund.objects.get()
    assert (refund.amount, refund.reason, refund.note, refund.origin, refund.status) == (
        1500,
        "requested_by_customer",
        "Mug broke",
        "staff",
        "succeeded",
    )
    assert refund.requested_by == User.objects.get(username="staff")
    assert charge_of(sandbox, order)["amount_refunded"] == 1500
    # The same page sent again (a double-click, a reload): the same refund.
    twice = staff_client.post(refund_page(order), data)
    assert twice.status_code == 302
    [(_, message)] = texts(twice)
    assert message.startswith("This refund was already asked for")
    assert Refund.objects.count() == 1
    # Sent again with another amount (the browser's back button): refused, not refunded.
    other = staff_client.post(refund_page(order), {**data, "amount": "5.00"})
    [(level, message)] = texts(other)
    assert level == messages.ERROR
    assert message.startswith("This form was already used for another refund")
    assert Refund.objects.count() == 1
    assert len(refund_posts(sandbox)) == 1
    # A fresh page offers what is left.
    assert form_fields(staff_client.get(refund_page(order)).content.decode())["amount"] == "25.00"


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("15.001", "USD amounts have 2 decimal places."),
        ("0", "The amount must be more than zero."),
        ("-5", "Enter an amount such as 12.50"),
        ("1e3", "Enter an amount such as 12.50"),
        ("", "This field is required."),
    ],
)
def test_a_bad_amount_is_a_form_error_and_changes_nothing(
    sandbox: SandboxServer, staff_client: Client, amount: str, error: str
) -> None:
    order = paid_order(sandbox)
    fields = form_fields(staff_client.get(refund_page(order)).content.decode())
    before = state(sandbox, order)
    response = staff_client.post(refund_page(order), {**fields, "amount": amount})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert state(sandbox, order) == before


def test_more_than_is_refundable_is_refused_with_the_services_message(
    sandbox: SandboxServer, staff_client: Client
) -> None:
    order = paid_order(sandbox)
    fields = form_fields(staff_client.get(refund_page(order)).content.decode())
    before = state(sandbox, order)
    response = staff_client.post(refund_page(order), {**fields, "amount": "40.01"})
    [(level, message)] = texts(response)
    assert level == messages.ERROR
    assert "exceeds what is refundable: at most 40.00 USD" in message
    assert state(sandbox, order) == before


def test_the_refund_action_needs_can_add_refund_not_the_orders_change_permission(
    sandbox: SandboxServer,
) -> None:
    order = paid_order(sandbox)
    change_page = f"/admin/orders/order/{order.pk}/change/"
    before = state(sandbox, order)
    order_staff = staff_with("orders", "view_order", "change_order", "view_refund")
    assert order_staff.get(refund_page(order)).status_code == 403
    assert order_staff.post(refund_page(order), {"amount": "1.00"}).status_code == 403
    assert f'href="{refund_page(order)}"' not in order_staff.get(change_page).content.decode()
    assert state(sandbox, order) == before

    refunder = staff_with("refunds", "view_order", "add_refund")
    page = refunder.get(change_page).content.decode()
    assert f'href="{refund_page(order)}"' in page
    fields = form_fields(refunder.get(refund_page(order)).content.decode())
    assert refunder.post(refund_page(order), {**fields, "amount": "1.00"}).status_code == 302
    assert Refund.objects.get().amount == 100


def test_the_refund_action_is_csrf_protected(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox)
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(boss)
    before = state(sandbox, order)
    response = client.post(refund_page(order), {"amount": "1.00", "request_key": A_KEY})
    assert response.status_code == 403
    assert state(sandbox, order) == before


def test_an_unpaid_order_offers_no_refund(sandbox: SandboxServer, staff_client: Client) -> None:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    created = Client().post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": "CLASSIC-TEE-M", "quantity": 1}]},
        content_type="application/json",
    )
    order = Order.objects.get(pk=created.json()["order"]["id"])
    page = staff_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert f'href="{refund_page(order)}"' not in page
    assert 'title="No money was received for this order."' in page
    form = staff_client.get(refund_page(order)).content.decode()
    assert "No money was received for this order. This action does not apply." in form
    response = staff_client.post(refund_page(order), {"amount": "1.00", "request_key": A_KEY})
    [(level, message)] = texts(response)
    assert level == messages.ERROR
    assert "No money was received" in message
    assert not Refund.objects.exists()


# -- The Refund list ----------------------------------------------------------------------


def refused_refund(sandbox: SandboxServer, order: Order) -> tuple[Refund, str]:
    """A refund Stripe refused because the charge is disputed there; the dispute's id."""
    opened = sandbox.control(f"charges/{charge_of(sandbox, order)['id']}/dispute", {})
    refund = refund_request(
        order_id=order.pk, amount=1000, reason=None, note="", user=None, idempotency_key=None
    ).refund
    assert (refund.status, refund.failure_reason) == ("failed", "charge_disputed")
    return refund, str(opened["id"])


def test_the_refund_list_filters_by_status_and_origin(
    sandbox: SandboxServer, staff_client: Client
) -> None:
    order = paid_order(sandbox)
    failed, _ = refused_refund(sandbox, order)
    page = staff_client.get("/admin/payments/refund/").content.decode()
    assert "10.00 USD" in page
    assert f"/admin/orders/order/{order.pk}/change/" in page
    assert str(failed.pk) in page

    def listed(query: str) -> str:
        return staff_client.get(f"/admin/payments/refund/?{query}").content.decode()

    assert str(failed.pk) in listed("status__exact=failed")
    assert str(failed.pk) in listed("origin__exact=staff")
    assert str(failed.pk) not in listed("status__exact=succeeded")
    assert str(failed.pk) not in listed("origin__exact=policy")
    detail = staff_client.get(f"/admin/payments/refund/{failed.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()


def test_the_retry_action_asks_again_for_a_failed_refund_and_skips_the_others(
    sandbox: SandboxServer, staff_client: Client
) -> None:
    order = paid_order(sandbox)
    failed, dispute_id = refused_refund(sandbox, order)
    sandbox.control(f"disputes/{dispute_id}/close", {"outcome": "won"})
    response = staff_client.post(
        "/admin/payments/refund/", {"action": "retry", "_selected_action": [str(failed.pk)]}
    )
    assert response.status_code == 302
    [(level, message)] = texts(response)
    assert (level, message) == (
        messages.SUCCESS,
        f"Refund {failed.pk} retried: Refund of 10.00 USD succeeded at Stripe.",
    )
    retried = Refund.objects.exclude(pk=failed.pk).get()
    assert (retried.status, retried.amount) == ("succeeded", 1000)
    assert charge_of(sandbox, order)["amount_refunded"] == 1000
    # Neither the succeeded retry nor the failed one again makes another refund.
    selected = [str(failed.pk), str(retried.pk)]
    again = staff_client.post(
        "/admin/payments/refund/", {"action": "retry", "_selected_action": selected}
    )
    succeeded = "Refund of 10.00 USD succeeded at Stripe."
    not_retryable = "is succeeded: only a failed or canceled refund can be retried."
    assert sorted(texts(again)) == sorted(
        [
            (messages.SUCCESS, f"Refund {failed.pk} was already retried: {succeeded}"),
            (messages.WARNING, f"Refund {retried.pk} {not_retryable}"),
        ]
    )
    assert Refund.objects.count() == 2
    assert len(refund_posts(sandbox)) == 2


def test_retrying_needs_can_add_refund_or_can_retry_a_failed_refund(
    sandbox: SandboxServer,
) -> None:
    order = paid_order(sandbox)
    failed, dispute_id = refused_refund(sandbox, order)
    sandbox.control(f"disputes/{dispute_id}/close", {"outcome": "won"})
    action = {"action": "retry", "_selected_action": [str(failed.pk)]}
    viewer = staff_with("viewer", "view_refund")
    assert 'value="retry"' not in viewer.get("/admin/payments/refund/").content.decode()
    viewer.post("/admin/payments/refund/", action)
    assert Refund.objects.count() == 1
    retrier = staff_with("retrier", "retry_refund")
    assert 'value="retry"' in retrier.get("/admin/payments/refund/").content.decode()
    assert retrier.post("/admin/payments/refund/", action).status_code == 302
    assert Refund.objects.filter(status="succeeded").count() == 1
