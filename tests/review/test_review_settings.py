"""Review of issue 7: addresses that Stripe must send customers back to are validated at
start, like the other settings, not at the first checkout."""

import pytest

from tests.test_settings import PRODUCTION_KEY, manage

# What the first checkout without success_url / cancel_url would do in that deployment.
FIRST_CHECKOUT = (
    "from django.conf import settings as s; "
    "from djangomart.payments.checkout import redirect_url_check; "
    "redirect_url_check(s.CHECKOUT_SUCCESS_URL, 'success_url'); print('usable')"
)


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"PUBLIC_URL": "backend.example"}, id="PUBLIC_URL without scheme"),
        pytest.param({"PUBLIC_URL": "ftp://backend.example"}, id="PUBLIC_URL not http(s)"),
    ],
)
def test_a_return_address_that_checkout_would_refuse_refuses_to_start(
    env: dict[str, str],
) -> None:
    """Today the process starts, and every checkout that relies on the default return
    URLs is answered 422 "success_url must be an absolute http(s) URL", blaming a client
    that sent no URL at all."""
    environment = {"DEBUG": "0", "SECRET_KEY": PRODUCTION_KEY, "ALLOWED_HOSTS": "api.example"}
    environment.update(env)
    started = manage("check", **environment)
    if started.returncode == 0:
        first = manage("shell", "-c", FIRST_CHECKOUT, **environment)
        pytest.fail(
            "started with an unusable return address; the first checkout then says: "
            + (first.stderr.strip().splitlines() or ["?"])[-1]
        )
    assert "PUBLIC_URL" in started.stderr
