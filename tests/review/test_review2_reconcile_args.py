"""Review 2: `manage.py reconcile --since` with an age too large for a timedelta must be
the command's clean usage error, not a traceback (and no run is recorded)."""

import pytest
from django.core.management import CommandError, call_command

from djangomart.payments.models import ReconciliationRun

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("age", ["99999999999d", "9999999999999999999999h"])
def test_an_age_too_large_is_a_command_error(age: str) -> None:
    with pytest.raises(CommandError, match="--since"):
        call_command("reconcile", "--since", age)
    assert not ReconciliationRun.objects.exists()
