"""`manage.py staff_token`: `create` prints the token alone on stdout (a real process,
so that the shop's stdout logging is part of the test), refuses users who may not hold
one; `revoke` by id, prefix or token; `list` never shows a token or its hash."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from djangomart.accounts.models import StaffApiToken
from djangomart.accounts.services import staff_token_create, staff_token_find, token_hash
from tests.conftest import database_url


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    """`python manage.py <args>` against the test database (the test's rows committed)."""
    url = database_url(connection.get_connection_params(), connection.settings_dict["NAME"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**env, "DATABASE_URL": url, "DEBUG": "1"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command("staff_token", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_create_prints_the_token_alone_on_stdout_and_logs_on_stderr() -> None:
    User.objects.create_user("alice", is_staff=True)
    done = manage("staff_token", "create", "alice", "--name", "support desk")
    assert done.returncode == 0, done.stderr
    token = done.stdout.removesuffix("\n")
    assert done.stdout == token + "\n"
    row = staff_token_find(token)
    assert row is not None
    assert (row.user.username, row.name, row.revoked_at) == ("alice", "support desk", None)
    assert row.key_hash == token_hash(token)
    # The shop's log line about it went to stderr, and names the token by its prefix only.
    [line] = [json.loads(x) for x in done.stderr.splitlines() if "staff API token" in x]
    assert (line["message"], line["token_prefix"]) == ("staff API token created", row.prefix)
    assert token not in done.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("username", "error"),
    [
        ("nobody", "No user named 'nobody'."),
        ("sleepy", "User 'sleepy' is inactive"),
        ("customer", "User 'customer' is not staff"),
    ],
)
def test_create_refuses_an_unknown_inactive_or_non_staff_user(username: str, error: str) -> None:
    User.objects.create_user("sleepy", is_staff=True, is_active=False)
    User.objects.create_user("customer")
    done = manage("staff_token", "create", username)
    assert done.returncode != 0
    assert done.stdout == ""
    assert error in done.stderr
    assert not StaffApiToken.objects.exists()


@pytest.mark.django_db
def test_create_in_process_writes_only_the_token() -> None:
    User.objects.create_user("alice", is_staff=True)
    out = run("create", "alice")
    [token] = out.splitlines()
    assert out == token + "\n"
    assert staff_token_find(token) is not None


@pytest.mark.django_db
def test_revoke_by_id_prefix_or_token() -> None:
    alice = User.objects.create_user("alice", is_staff=True)
    tokens = [staff_token_create(alice, name) for name in ("a", "b", "c")]
    (t1, r1), (t2, r2), (t3, r3) = tokens
    assert "Revoked token" in run("revoke", str(r1.pk))
    assert "Revoked token" in run("revoke", f"{r2.prefix}…")
    assert "Revoked token" in run("revoke", t3)
    revoked = StaffApiToken.objects.filter(revoked_at__isnull=False)
    assert set(revoked.values_list("pk", flat=True)) == {r1.pk, r2.pk, r3.pk}
    assert {token_hash(t) for t in (t1, t2, t3)} == set(revoked.values_list("key_hash", flat=True))
    assert "already revoked" in run("revoke", str(r1.pk))


@pytest.mark.django_db
def test_revoke_refuses_what_it_cannot_tell_apart() -> None:
    alice = User.objects.create_user("alice", is_staff=True)
    _, one = staff_token_create(alice)
    _, two = staff_token_create(alice)
    StaffApiToken.objects.filter(pk=two.pk).update(prefix=one.prefix)
    with pytest.raises(CommandError, match="Several tokens have the prefix"):
        run("revoke", one.prefix)
    with pytest.raises(CommandError, match="No staff API token"):
        run("revoke", "dmst_nothing")
    with pytest.raises(CommandError, match="No staff API token with id 999999"):
        run("revoke", "999999")
    assert not StaffApiToken.objects.filter(revoked_at__isnull=False).exists()


@pytest.mark.django_db
def test_list_shows_each_token_by_its_prefix_never_the_secret() -> None:
    alice = User.objects.create_user("alice", is_staff=True)
    token, row = staff_token_create(alice, "support desk")
    staff_token_create(alice, "old")
    run("revoke", str(row.pk))
    lines = run("list").splitlines()
    assert lines[0].split("\t") == [
        "id",
        "prefix",
        "user",
        "name",
        "created",
        "last used",
        "revoked",
    ]
    first = lines[1].split("\t")
    assert first[:4] == [str(row.pk), row.prefix, "alice", "support desk"]
    assert first[5] == "-"
    assert first[6] != "-"  # revoked
    assert len(lines) == 3
    text = "\n".join(lines)
    assert token not in text
    assert row.key_hash not in text
