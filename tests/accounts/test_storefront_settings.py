"""The storefront API's settings come from the environment, with safe defaults."""

import json

from tests.test_settings import PRODUCTION_KEY, manage

SCRIPT = (
    "import json; from django.conf import settings as s; print(json.dumps(["
    "s.CACHES['default']['BACKEND'], s.CACHES['default'].get('LOCATION'), s.EMAIL_BACKEND, "
    "getattr(s, 'EMAIL_HOST', ''), getattr(s, 'EMAIL_PORT', 0), "
    "getattr(s, 'EMAIL_USE_TLS', False), "
    "s.CORS_ALLOWED_ORIGINS, s.SHOP_NAME, s.HEADLESS_FRONTEND_URLS['account_confirm_email'], "
    "s.RATE_LIMIT_CHECKOUT, s.PROXY_HOPS]))"
)


def settings_seen(**env: str) -> list[object]:
    result = manage(
        "shell", "-c", SCRIPT, DEBUG="0", SECRET_KEY=PRODUCTION_KEY,
        ALLOWED_HOSTS="api.shop.example", **env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_defaults_need_no_other_service() -> None:
    assert settings_seen() == [
        "django.core.cache.backends.db.DatabaseCache", "djangomart_cache",
        "django.core.mail.backends.console.EmailBackend", "localhost", 25, False,
        [], "DjangoMart", "https://api.shop.example/shop/account/confirm-email/{key}/", "60/m", 0,
    ]  # fmt: skip


def test_redis_smtp_cors_brand_and_frontend_come_from_the_environment() -> None:
    assert settings_seen(
        REDIS_URL="redis://127.0.0.1:6379/3",
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.com:587",
        CORS_ALLOWED_ORIGINS="https://shop.example,https://app.shop.example",
        SHOP_NAME="Acme Outfitters",
        FRONTEND_URL="https://shop.example",
        RATE_LIMIT_CHECKOUT="5/m",
        PROXY_HOPS="1",
    ) == [
        "django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6379/3",
        "django.core.mail.backends.smtp.EmailBackend", "smtp.example.com", 587, True,
        ["https://shop.example", "https://app.shop.example"], "Acme Outfitters",
        "https://shop.example/account/verify-email/{key}", "5/m", 1,
    ]  # fmt: skip


def test_a_malformed_rate_limit_refuses_to_start() -> None:
    result = manage("check", DEBUG="1", RATE_LIMIT_CART_WRITE="lots")
    assert result.returncode != 0
    assert "A rate limit is N/s, N/m or N/h" in result.stderr
