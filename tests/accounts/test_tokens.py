"""Staff API tokens (djangomart.accounts.services): random, prefixed, stored only as a
SHA-256, found by that hash, revoked for good, and their use recorded at most once a
minute."""

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from djangomart.accounts.models import StaffApiToken
from djangomart.accounts.services import (
    LAST_USED_RESOLUTION,
    StaffTokenRefused,
    staff_token_create,
    staff_token_find,
    staff_token_revoke,
    staff_token_used,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", is_staff=True)


def test_a_token_is_prefixed_random_and_only_its_sha256_is_stored(alice: User) -> None:
    token, row = staff_token_create(alice, "  support desk  ")
    assert re.fullmatch(r"dmst_[A-Za-z0-9_-]{43}", token)
    stored = StaffApiToken.objects.get()
    assert stored.pk == row.pk
    assert stored.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert (stored.user, stored.name, stored.prefix) == (alice, "support desk", token[:13])
    assert (stored.last_used_at, stored.revoked_at) == (None, None)
    # The token itself is in no column (only its first 13 characters, the prefix).
    values = StaffApiToken.objects.values_list().get()
    assert not any(token in str(value) for value in values)
    other, _ = staff_token_create(alice)
    assert other != token
    assert other[:13] != token[:13]


@pytest.mark.parametrize(
    ("changes", "why"),
    [({"is_active": False}, "is inactive"), ({"is_staff": False}, "is not staff")],
    ids=["inactive", "not-staff"],
)
def test_only_an_active_staff_user_may_hold_a_token(
    alice: User, changes: dict[str, Any], why: str
) -> None:
    User.objects.filter(pk=alice.pk).update(**changes)
    alice.refresh_from_db()
    with pytest.raises(StaffTokenRefused, match=why) as refused:
        staff_token_create(alice)
    assert refused.value.code == "staff_token_refused"
    assert not StaffApiToken.objects.exists()


def test_a_name_longer_than_the_column_is_refused(alice: User) -> None:
    with pytest.raises(StaffTokenRefused, match="at most 100"):
        staff_token_create(alice, "x" * 101)
    assert not StaffApiToken.objects.exists()


def test_the_token_finds_its_row_and_nothing_else_does(
    alice: User, django_assert_num_queries: Any
) -> None:
    token, row = staff_token_create(alice)
    with django_assert_num_queries(1):
        found = staff_token_find(token)
        assert found is not None
        assert (found.pk, found.user.username) == (row.pk, "alice")  # user joined
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert staff_token_find(flipped) is None
    # Not shaped like a token: refused without a query.
    with django_assert_num_queries(0):
        for bad in [
            "",
            token[:-1],
            token + "x",
            token.replace("dmst_", "dmsx_"),
            "dmst_" + "!" * 43,
            row.key_hash,
            token + "\x00",
            token + "\n",
        ]:
            assert staff_token_find(bad) is None


def test_revoking_stops_the_token_once_and_keeps_when(alice: User) -> None:
    token, row = staff_token_create(alice)
    assert staff_token_revoke(row) is True
    revoked_at = row.revoked_at
    assert revoked_at is not None
    assert staff_token_revoke(row) is False
    row.refresh_from_db()
    assert row.revoked_at == revoked_at
    found = staff_token_find(token)
    assert found is not None
    assert found.revoked_at == revoked_at  # found, so that the API can say "revoked"


def test_use_is_recorded_at_most_once_a_minute(alice: User, django_assert_num_queries: Any) -> None:
    _, row = staff_token_create(alice)
    with django_assert_num_queries(1):
        staff_token_used(row)
    first = StaffApiToken.objects.get().last_used_at
    assert first is not None
    with django_assert_num_queries(0):
        staff_token_used(row)
    # Another process holding an older copy of the row: its UPDATE is conditional.
    stale = StaffApiToken.objects.get()
    stale.last_used_at = None
    staff_token_used(stale)
    assert StaffApiToken.objects.get().last_used_at == first
    # A minute later it is written again.
    earlier = timezone.now() - LAST_USED_RESOLUTION - timedelta(seconds=1)
    StaffApiToken.objects.update(last_used_at=earlier)
    row.refresh_from_db()
    staff_token_used(row)
    later = StaffApiToken.objects.get().last_used_at
    assert later is not None
    assert later > earlier
