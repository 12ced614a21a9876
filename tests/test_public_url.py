"""Where Stripe sends customers back: the built-in return page at PUBLIC_URL unless the
shop has a FRONTEND_URL, and the admin's "View site" link."""

import json

import pytest

from tests.test_settings import PRODUCTION_KEY, manage

SCRIPT = (
    "import json; from django.conf import settings as s; from django.contrib import admin; "
    "import djangomart.urls; print(json.dumps([s.PUBLIC_URL, s.CHECKOUT_SUCCESS_URL, "
    "s.CHECKOUT_CANCEL_URL, sorted(set(s.CHECKOUT_REDIRECT_HOSTS)), admin.site.site_url]))"
)
RETURN = "/checkout/return?session_id={CHECKOUT_SESSION_ID}"


def settings_with(**env: str) -> list[object]:
    env.setdefault("FRONTEND_URL", "")
    env.setdefault("PUBLIC_URL", "")
    environment = {k: v for k, v in env.items() if v}
    result = manage("shell", "-c", SCRIPT, **environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_without_a_frontend_customers_return_to_the_backend_on_its_development_port() -> None:
    public, success, cancel, hosts, site = settings_with(DEBUG="1", PORT="9123")
    assert public == "http://127.0.0.1:9123"
    assert success == cancel == "http://127.0.0.1:9123" + RETURN
    assert "127.0.0.1" in hosts  # type: ignore[operator]
    assert site == "/api/v1/docs"


def test_in_production_the_return_page_is_https_on_the_first_allowed_host() -> None:
    public, success, _, hosts, _ = settings_with(
        DEBUG="0", SECRET_KEY=PRODUCTION_KEY, ALLOWED_HOSTS="api.shop.example,other.example"
    )
    assert public == "https://api.shop.example"
    assert success == "https://api.shop.example" + RETURN
    assert hosts == ["api.shop.example"]


def test_public_url_names_the_backend_and_is_an_allowed_redirect_host() -> None:
    public, success, _, hosts, _ = settings_with(
        DEBUG="0", SECRET_KEY=PRODUCTION_KEY, PUBLIC_URL="https://backend.example/"
    )
    assert (public, success) == ("https://backend.example", "https://backend.example" + RETURN)
    assert hosts == ["backend.example"]


def test_a_frontend_gets_the_return_urls_and_view_site_and_both_hosts_are_allowed() -> None:
    _, success, cancel, hosts, site = settings_with(
        DEBUG="0", SECRET_KEY=PRODUCTION_KEY, ALLOWED_HOSTS="api.shop.example",
        FRONTEND_URL="https://shop.example",
    )  # fmt: skip
    assert success == "https://shop.example/checkout/success?session_id={CHECKOUT_SESSION_ID}"
    assert cancel == "https://shop.example/checkout/cancel"
    assert hosts == ["api.shop.example", "shop.example"]
    assert site == "https://shop.example"


def test_production_with_neither_address_refuses_to_start() -> None:
    result = manage("check", DEBUG="0", SECRET_KEY=PRODUCTION_KEY, ALLOWED_HOSTS="*")
    assert result.returncode != 0
    assert "Set PUBLIC_URL" in result.stderr


# What the first checkout without success_url / cancel_url would do in that deployment.
FIRST_CHECKOUT = (
    "from django.conf import settings as s; "
    "from djangomart.payments.checkout import redirect_url_check; "
    "redirect_url_check(s.CHECKOUT_SUCCESS_URL, 'success_url'); "
    "redirect_url_check(s.CHECKOUT_CANCEL_URL, 'cancel_url'); print('usable')"
)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"PUBLIC_URL": "backend.example"}, "PUBLIC_URL", id="PUBLIC_URL no scheme"),
        pytest.param(
            {"PUBLIC_URL": "ftp://backend.example"}, "PUBLIC_URL", id="PUBLIC_URL not http(s)"
        ),
        pytest.param(
            {"PUBLIC_URL": "https://ops@backend.example"}, "PUBLIC_URL", id="PUBLIC_URL user info"
        ),
        pytest.param({"FRONTEND_URL": "shop.example"}, "FRONTEND_URL", id="FRONTEND_URL no scheme"),
    ],
)
def test_a_return_address_that_checkout_would_refuse_refuses_to_start(
    env: dict[str, str], variable: str
) -> None:
    """Validated at start, like the other settings: otherwise the process starts and
    every checkout relying on the default return URLs is answered 422 "success_url must
    be an absolute http(s) URL", blaming a client that sent no URL at all."""
    environment = {"DEBUG": "0", "SECRET_KEY": PRODUCTION_KEY, "ALLOWED_HOSTS": "api.example"}
    environment.update(env)
    started = manage("check", **environment)
    if started.returncode == 0:
        first = manage("shell", "-c", FIRST_CHECKOUT, **environment)
        pytest.fail(
            "started with an unusable return address; the first checkout then says: "
            + (first.stderr.strip().splitlines() or ["?"])[-1]
        )
    assert "ImproperlyConfigured" in started.stderr
    assert f"{variable} must be an absolute http(s) URL" in started.stderr


def test_every_return_address_that_starts_is_one_checkout_accepts() -> None:
    for env in (
        {"PUBLIC_URL": "https://backend.example/"},
        {"PUBLIC_URL": "http://127.0.0.1:8000"},
        {"FRONTEND_URL": "https://shop.example/store"},
        {},  # https:// + the first ALLOWED_HOSTS name
    ):
        environment = {"DEBUG": "0", "SECRET_KEY": PRODUCTION_KEY, "ALLOWED_HOSTS": "api.example"}
        result = manage("shell", "-c", FIRST_CHECKOUT, **environment, **env)
        assert result.returncode == 0, (env, result.stderr)
        assert result.stdout.strip().splitlines()[-1] == "usable"
