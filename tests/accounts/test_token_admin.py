"""The staff API tokens in the admin: listed by prefix (never the hash), revoked with an
action, never edited or deleted; "Add" shows the new token once."""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client

from djangomart.accounts.models import StaffApiToken
from djangomart.accounts.services import staff_token_create, staff_token_find

pytestmark = pytest.mark.django_db

LIST = "/admin/accounts/staffapitoken/"


def test_the_list_shows_tokens_by_prefix_and_never_their_hash(staff_client: Client) -> None:
    alice = User.objects.create_user("alice", is_staff=True)
    token, row = staff_token_create(alice, "support desk")
    page = staff_client.get(LIST).content.decode()
    assert f"{row.prefix}…" in page
    assert "support desk" in page
    assert row.key_hash not in page
    assert token not in page
    change = staff_client.get(f"{LIST}{row.pk}/change/")
    assert change.status_code == 200
    text = change.content.decode()
    assert row.key_hash not in text
    assert 'name="key_hash"' not in text
    assert 'name="_save"' not in text  # read-only


def test_the_revoke_action_revokes_the_selected_tokens(staff_client: Client) -> None:
    alice = User.objects.create_user("alice", is_staff=True)
    token, row = staff_token_create(alice)
    kept, _ = staff_token_create(alice)
    response = staff_client.post(LIST, {"action": "revoke", "_selected_action": [row.pk]})
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "1 token(s) revoked; they stop working at once."
    ]
    assert staff_token_find(token).revoked_at is not None  # type: ignore[union-attr]
    assert staff_token_find(kept).revoked_at is None  # type: ignore[union-attr]


def test_a_token_cannot_be_edited_or_deleted_in_the_admin(staff_client: Client) -> None:
    alice = User.objects.create_user("alice", is_staff=True)
    _, row = staff_token_create(alice, "desk")
    staff_client.post(f"{LIST}{row.pk}/change/", {"name": "renamed", "user": alice.pk})
    assert staff_client.post(f"{LIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert (row.name, StaffApiToken.objects.count()) == ("desk", 1)


def test_add_shows_the_new_token_once_and_stores_only_its_hash(staff_client: Client) -> None:
    assert staff_client.get(f"{LIST}add/").status_code == 200
    response = staff_client.post(f"{LIST}add/", {"user": User.objects.get().pk, "name": "ci"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [token] = re.findall(
        r'id="staff-api-token"[^>]*>(dmst_[A-Za-z0-9_-]{43})<', response.content.decode()
    )
    row = staff_token_find(token)
    assert row is not None
    assert (row.user.username, row.name) == ("staff", "ci")
    # Nowhere else: the list does not show it.
    assert token not in staff_client.get(LIST).content.decode()


def test_staff_without_the_superuser_bit_create_tokens_only_for_themselves(db: None) -> None:
    bob = User.objects.create_user("bob", is_staff=True)
    codenames = ["add_staffapitoken", "view_staffapitoken"]
    bob.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(bob)
    response = client.post(f"{LIST}add/", {"user": boss.pk, "name": "sneaky"})
    assert response.status_code == 200
    row = StaffApiToken.objects.get()
    assert row.user == bob


def test_the_token_pages_are_closed_to_staff_without_permissions(db: None) -> None:
    User.objects.create_user("alice", is_staff=True)
    _, row = staff_token_create(User.objects.get(username="alice"))
    viewer = User.objects.create_user("viewer", is_staff=True)
    client = Client()
    client.force_login(viewer)
    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}add/", {"name": "x"}).status_code == 403
    client.post(LIST, {"action": "revoke", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.revoked_at is None
    assert StaffApiToken.objects.count() == 1
