"""Review 3: an address saved while the account is being deleted must not outlive the
deletion. The address book's services and the deletion meet on the user row's lock, but
an address write that waited for the deletion went on afterwards and saved the address
(a name, a street, a phone) into the deleted, inactive account: personal data that the
deletion promises to erase, kept for good with no one left to delete it."""

import threading
import time

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction

from djangomart.accounts.addresses import AddressIn, address_create
from djangomart.accounts.deletion import _account_erase
from djangomart.accounts.models import Address
from djangomart.core.errors import DomainError
from tests.accounts.helpers import customer_create

ADDRESS = AddressIn(name="Ada Lovelace", line1="12 St James's Square", city="London",
                    country="GB", phone="+44 20 7946 0000")  # fmt: skip


def _wait_until_blocked_on_a_lock(timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            # Inside a transaction the statistics views are a snapshot: take a new one.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the address write never waited for the deletion's lock")


@pytest.mark.django_db(transaction=True)
def test_an_address_saved_during_the_deletion_is_not_kept() -> None:
    ada = customer_create("ada@example.com")
    outcome: list[object] = []

    def save_address() -> None:
        try:
            outcome.append(address_create(customer=ada, data=ADDRESS))
        except DomainError as exc:
            outcome.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        # The deletion's transaction: it holds the user row while it erases.
        User.objects.select_for_update().get(pk=ada.pk)
        writer = threading.Thread(target=save_address)
        writer.start()
        _wait_until_blocked_on_a_lock()
        _account_erase(user_id=ada.pk, session_keys=set())
    writer.join(10)

    assert not writer.is_alive()
    assert not Address.objects.filter(customer_id=ada.pk).exists()
    assert len(outcome) == 1
    assert isinstance(outcome[0], DomainError)
    assert outcome[0].status == 401
