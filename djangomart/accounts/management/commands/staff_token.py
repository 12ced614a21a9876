"""`manage.py staff_token create <username> [--name NAME]` prints a new staff API token,
and nothing else, on stdout (`TOKEN=$(manage.py staff_token create alice)`);
`staff_token revoke <id, prefix or token>`; `staff_token list`."""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from djangomart.accounts.models import StaffApiToken
from djangomart.accounts.services import (
    NAME_MAX_LENGTH,
    StaffTokenRefused,
    staff_token_create,
    staff_token_find,
    staff_token_revoke,
)


@contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """The shop logs JSON lines to stdout (djangomart.core.logging); while this command
    runs they go to stderr, so that stdout holds only what the command prints."""
    moved = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout
    ]
    for handler in moved:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(sys.stdout)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


class Command(BaseCommand):
    help = "Create, revoke and list staff API tokens (Authorization: Bearer <token>)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser(
            "create",
            help="Create a token for an active staff user; prints the token alone on stdout "
            "(it is shown only this once).",
        )
        create.add_argument("username")
        create.add_argument(
            "--name", default="", help=f"What the token is for (at most {NAME_MAX_LENGTH} chars)."
        )
        revoke = actions.add_parser("revoke", help="Revoke a token: it stops working at once.")
        revoke.add_argument("token", help="The token's id, its prefix (dmst_...) or the token.")
        actions.add_parser("list", help="List the tokens (never the tokens themselves).")

    def execute(self, *args: Any, **options: Any) -> str | None:
        with _logs_to_stderr():
            return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self._create(options["username"], options["name"])
        elif action == "revoke":
            self._revoke(options["token"])
        else:
            self._list()

    def _create(self, username: str, name: str) -> None:
        model = get_user_model()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        try:
            token, _ = staff_token_create(user, name)
        except StaffTokenRefused as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(token)

    def _revoke(self, given: str) -> None:
        token = self._find(given.strip())
        if staff_token_revoke(token):
            self.stdout.write(f"Revoked token {token.pk} ({token.prefix}…) of {token.user}.")
        else:
            self.stdout.write(
                f"Token {token.pk} ({token.prefix}…) was already revoked at "
                f"{_when(token.revoked_at)}."
            )

    def _find(self, given: str) -> StaffApiToken:
        if given.isascii() and given.isdigit():
            found = StaffApiToken.objects.select_related("user").filter(pk=int(given)).first()
            if found is None:
                raise CommandError(f"No staff API token with id {given}.")
            return found
        whole = staff_token_find(given)
        if whole is not None:
            return whole
        # As the admin and `list` show it, with or without the ellipsis.
        prefix = given.rstrip("…").rstrip(".")
        matches = list(StaffApiToken.objects.select_related("user").filter(prefix=prefix)[:10])
        if not matches:
            raise CommandError(f"No staff API token with id, prefix or value {given!r}.")
        if len(matches) > 1:
            ids = ", ".join(str(t.pk) for t in matches)
            raise CommandError(
                f"Several tokens have the prefix {prefix!r} (ids {ids}): give the id."
            )
        return matches[0]

    def _list(self) -> None:
        rows = StaffApiToken.objects.select_related("user").order_by("created_at", "pk")
        self.stdout.write("id\tprefix\tuser\tname\tcreated\tlast used\trevoked")
        for t in rows:
            self.stdout.write(
                "\t".join(
                    [
                        str(t.pk),
                        t.prefix,
                        t.user.get_username(),
                        t.name or "-",
                        _when(t.created_at),
                        _when(t.last_used_at),
                        _when(t.revoked_at),
                    ]
                )
            )
