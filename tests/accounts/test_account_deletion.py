"""DELETE /api/v1/me: the customer deletes their account after re-entering their
password. Orders keep their lines and money facts; personal data (name, email, saved
addresses, carts, the orders' email and shipping details but the country) is erased;
every session and token ends at once; the email can sign up again."""

import threading
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.usersessions.models import UserSession
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from djangomart.accounts.deletion import ERASED, TIMELINE_MESSAGE
from djangomart.accounts.models import Address, StaffApiToken
from djangomart.accounts.services import staff_token_create
from djangomart.carts.models import Cart
from djangomart.notify.emails.models import Notification
from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import Refund
from tests.accounts.helpers import PASSWORD, app_login, browser_csrf, customer_create
from tests.accounts.me_builders import SHIPPING, order_make, order_paid_and_refunded
from tests.orders.conftest import goods

__all__ = ["goods"]

pytestmark = pytest.mark.django_db

MONEY_FACTS = (
    "status",
    "payment_status",
    "currency",
    "subtotal",
    "total",
    "amount_paid",
    "amount_refunded",
    "disputed",
    "dispute_lost",
    "amount_lost_to_disputes",
)


def me_delete(client: Client, body: Any = None, **headers: str) -> Any:
    if body is None:
        return client.delete("/api/v1/me", headers=headers)
    return client.delete("/api/v1/me", body, content_type="application/json", headers=headers)


def money_facts(order: Order) -> dict[str, Any]:
    order.refresh_from_db()
    facts = {name: getattr(order, name) for name in MONEY_FACTS}
    facts["lines"] = list(order.lines.values_list("sku", "unit_price", "quantity", "line_total"))
    facts["refunds"] = list(order.refunds.values_list("amount", "status"))
    return facts


def test_deleting_an_account_keeps_its_orders_money_facts_and_removes_its_personal_data(
    goods: None,
) -> None:
    ada = customer_create("ada@example.com")
    ada.first_name, ada.last_name = "Ada", "Lovelace"
    ada.save()
    shipped = order_make(ada, shipping=SHIPPING)
    order_paid_and_refunded(shipped, refunded=1500)
    unshipped = order_make(ada)
    Address.objects.create(customer=ada, **{k: v for k, v in SHIPPING.items()})
    Cart.objects.create(customer=ada)
    bob = customer_create("bob@example.com")
    bobs = order_make(bob, email="bob@example.com", shipping=SHIPPING)
    before = {o.pk: money_facts(o) for o in (shipped, unshipped, bobs)}
    old_token = shipped.access_token
    token = app_login(Client(), "ada@example.com")

    response = me_delete(Client(), {"password": PASSWORD}, **{"X-Session-Token": token})

    assert response.status_code == 204, response.content
    assert {o.pk: money_facts(o) for o in (shipped, unshipped, bobs)} == before
    assert Refund.objects.filter(order=shipped).count() == 1
    ada.refresh_from_db()
    placeholder = f"deleted-{ada.pk}@deleted.invalid"
    assert (ada.email, ada.username, ada.first_name, ada.last_name) == (
        placeholder, placeholder, "", ""
    )  # fmt: skip
    assert not ada.is_active
    assert not ada.has_usable_password()
    assert not EmailAddress.objects.filter(user=ada).exists()
    assert not Address.objects.filter(customer=ada).exists()
    assert not Cart.objects.filter(customer=ada).exists()
    shipped.refresh_from_db()
    unshipped.refresh_from_db()
    assert shipped.customer_id == ada.pk  # still the account's order, for the books
    assert shipped.email == unshipped.email == placeholder
    assert shipped.shipping_address == {
        "name": ERASED, "line1": ERASED, "line2": "", "city": ERASED, "postal_code": ERASED,
        "region": "", "country": "GB", "phone": ERASED,
    }  # fmt: skip
    assert unshipped.shipping_address is None
    assert shipped.access_token != old_token
    assert OrderEvent.objects.filter(order=shipped, message=TIMELINE_MESSAGE).count() == 1
    # Nobody else's data changed.
    bobs.refresh_from_db()
    assert bobs.email == "bob@example.com"
    assert bobs.shipping_address == SHIPPING
    assert User.objects.get(pk=bob.pk).email == "bob@example.com"


def test_after_deletion_the_cookie_the_session_token_and_order_token_stop_working(
    goods: None,
) -> None:
    ada = customer_create("ada@example.com")
    order = order_make(ada)
    app = Client()
    token = app_login(app, "ada@example.com")
    browser = Client()
    browser.force_login(ada)
    csrf = browser_csrf(browser)
    cookie_session = browser.session.session_key

    response = me_delete(browser, {"password": PASSWORD}, **{"X-CSRFToken": csrf})

    assert response.status_code == 204, response.content
    cookie = browser.get("/api/v1/me")
    assert cookie.status_code == 401
    assert cookie.json()["code"] == "not_authenticated"
    app_answer = app.get("/api/v1/me", headers={"X-Session-Token": token})
    assert app_answer.status_code == 401
    assert app_answer.json()["code"] == "session_expired"
    guest_link = Client().get(
        f"/api/v1/orders/{order.pk}", headers={"X-Order-Token": order.access_token}
    )
    assert guest_link.status_code == 404
    assert not Session.objects.filter(session_key__in=[token, cookie_session]).exists()
    assert not UserSession.objects.filter(user=ada).exists()


def test_the_old_credentials_no_longer_log_in_and_the_email_can_sign_up_again(
    goods: None,
) -> None:
    ada = customer_create("ada@example.com")
    client = Client()
    token = app_login(client, "ada@example.com")
    assert (
        me_delete(client, {"password": PASSWORD}, **{"X-Session-Token": token}).status_code == 204
    )

    login = Client().post(
        "/_allauth/app/v1/auth/login",
        {"email": "ada@example.com", "password": PASSWORD},
        content_type="application/json",
    )
    signup = Client().post(
        "/_allauth/app/v1/auth/signup",
        {"email": "ada@example.com", "password": "another-horse-battery-7"},
        content_type="application/json",
    )

    assert login.status_code == 400, login.content
    assert signup.status_code == 401, signup.content  # created, waiting for verification
    newcomer = User.objects.get(email="ada@example.com")
    assert newcomer.pk != ada.pk
    assert not newcomer.orders.exists()


@pytest.mark.parametrize("body", [None, {}, {"password": ""}, {"password": "wrong-horse"}], ids=str)
def test_a_wrong_or_missing_password_is_403_and_changes_nothing(body: Any, goods: None) -> None:
    ada = customer_create("ada@example.com")
    order = order_make(ada, shipping=SHIPPING)
    client = Client()
    token = app_login(client, "ada@example.com")

    response = me_delete(client, body, **{"X-Session-Token": token})

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "reauthentication_failed"
    ada.refresh_from_db()
    order.refresh_from_db()
    assert ada.is_active
    assert ada.email == order.email == "ada@example.com"
    assert order.shipping_address == SHIPPING
    assert EmailAddress.objects.filter(user=ada, verified=True).exists()
    assert client.get("/api/v1/me", headers={"X-Session-Token": token}).status_code == 200


def test_password_guessing_is_rate_limited() -> None:
    ada = customer_create("ada@example.com")
    client = Client()
    client.force_login(ada)
    csrf = browser_csrf(client)
    codes = [
        me_delete(client, {"password": f"guess-{n}"}, **{"X-CSRFToken": csrf}).status_code
        for n in range(11)
    ]

    last = me_delete(client, {"password": PASSWORD}, **{"X-CSRFToken": csrf})

    assert codes == [403] * 10 + [429]
    assert last.status_code == 429
    assert last["Retry-After"]
    ada.refresh_from_db()
    assert ada.is_active


def test_a_staff_account_is_not_deleted_through_the_storefront_api() -> None:
    staff = customer_create("staff@example.com")
    staff.is_staff = True
    staff.save()
    staff_token_create(staff, "support desk")
    client = Client()
    client.force_login(staff)

    response = me_delete(client, {"password": PASSWORD}, **{"X-CSRFToken": browser_csrf(client)})

    assert response.status_code == 403
    assert response.json()["code"] == "staff_account"
    staff.refresh_from_db()
    assert staff.is_active
    assert StaffApiToken.objects.get(user=staff).revoked_at is None


def test_a_former_staff_members_api_tokens_are_revoked() -> None:
    ada = customer_create("ada@example.com")
    ada.is_staff = True
    ada.save()
    _, row = staff_token_create(ada, "old laptop")
    ada.is_staff = False
    ada.save()
    client = Client()
    client.force_login(ada)

    response = me_delete(client, {"password": PASSWORD}, **{"X-CSRFToken": browser_csrf(client)})

    assert response.status_code == 204
    row.refresh_from_db()
    assert row.revoked_at is not None


def test_deleting_with_the_cookie_needs_the_csrf_token() -> None:
    ada = customer_create("ada@example.com")
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)

    response = me_delete(client, {"password": PASSWORD})

    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    ada.refresh_from_db()
    assert ada.is_active


@pytest.mark.django_db(transaction=True)
def test_two_deletions_at_once_erase_the_account_once(goods: None) -> None:
    ada = customer_create("ada@example.com")
    order = order_make(ada, shipping=SHIPPING)
    tokens = [app_login(Client(), "ada@example.com") for _ in range(2)]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def delete(token: str) -> None:
        try:
            barrier.wait(timeout=10)
            response = me_delete(Client(), {"password": PASSWORD}, **{"X-Session-Token": token})
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=delete, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # The later one waited for the first one's lock and found the account gone (204), or
    # came after its commit with a token that had ended (401).
    assert sorted(statuses) in ([204, 204], [204, 401])
    assert OrderEvent.objects.filter(order=order, message=TIMELINE_MESSAGE).count() == 1
    ada.refresh_from_db()
    assert not ada.is_active
    assert ada.email == f"deleted-{ada.pk}@deleted.invalid"


def test_the_emails_sent_about_the_accounts_orders_are_erased(goods: None) -> None:
    ada = customer_create("ada@example.com")
    adas = order_make(ada)
    bob = customer_create("bob@example.com")
    bobs = order_make(bob, email="bob@example.com")
    for order in (adas, bobs):
        notify_enqueue(EventType.ORDER_PAID, order)
    Notification.objects.update(
        status="sent", recipient="someone@example.com", body_text="Dear someone", body_html="<p>"
    )
    token = app_login(Client(), "ada@example.com")

    assert (
        me_delete(Client(), {"password": PASSWORD}, **{"X-Session-Token": token}).status_code == 204
    )

    (erased,) = Notification.objects.filter(order=adas)
    assert (erased.recipient, erased.body_text, erased.body_html) == ("", "", "")
    assert erased.status == "sent"  # the record that it was sent stays
    (kept,) = Notification.objects.filter(order=bobs)
    assert kept.body_text == "Dear someone"
