"""DjangoMart settings: one module, configured only through environment variables.

Every variable is documented in README.md ("Configuration"). Defaults are the
safe production ones; the development launchers (`make run`, `make test`, see
devtools/) set `DEBUG=1` and a `DATABASE_URL` for the embedded PostgreSQL when
they are not given.
"""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from djangomart.core.colours import is_colour
from djangomart.core.logging import json_stdout_logging
from djangomart.core.ratelimit import rate_parse
from djangomart.core.redirects import redirect_url_problem

# Typed generics such as ModelAdmin[Product] must be subscriptable at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG: bool = env.bool("DEBUG", default=False)

# A development key is only ever used with DEBUG on; a production process
# without SECRET_KEY refuses to start rather than sign cookies with a known key.
_DEV_SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production-0123456789abcdef"  # noqa: S105
SECRET_KEY: str = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

PORT: int = env.int("PORT", default=8000)

if "DATABASE_URL" not in env:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Use `make run` / `make test` (they start an embedded "
        "PostgreSQL), or `.venv/bin/python -m devtools.withdb -- <command>`."
    )
DATABASES = {"default": env.db_url("DATABASE_URL")}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured(
        "DjangoMart runs on PostgreSQL only; DATABASE_URL must be postgres://"
    )
# Persistent connections: opening a connection costs more than most requests.
DATABASES["default"]["CONN_MAX_AGE"] = 600
# No health check (a SELECT 1 round trip before every request, a sixth of the webhook
# ingest's time): after a database restart, each process's next request fails once
# (a 5xx, which Stripe and clients retry) and Django then opens a fresh connection.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
# TCP keepalives both ways: when a machine holding a connection dies or its network is
# cut, PostgreSQL ends that session within about a minute and releases its locks (an
# event worker's claim, an order row lock) instead of after the kernel's two hours (the
# server's tcp_keepalives_*, set per session), and the client notices a dead server
# (libpq's keepalives_*). A DATABASE_URL's own keepalives_* win, and so do the -c
# settings of its own `options`, which come after these.
_options = DATABASES["default"].setdefault("OPTIONS", {})
for _option, _value in {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                        "keepalives_count": 3}.items():  # fmt: skip
    _options.setdefault(_option, _value)
_options["options"] = " ".join(
    [
        "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
        str(_options.get("options") or ""),
    ]
).strip()

# Stripe. With no secret key, `make run` starts the offline sandbox and sets all three.
STRIPE_SECRET_KEY: str = env.str("STRIPE_SECRET_KEY", default="")
# Comma-separated; any one may sign an event, so secrets can be rotated without downtime.
# Spaces around the commas are not part of a secret ("whsec_old, whsec_new").
STRIPE_WEBHOOK_SECRETS: list[str] = [
    secret.strip() for secret in env.list("STRIPE_WEBHOOK_SECRETS", default=[]) if secret.strip()
]
# A Stripe-compatible server (the sandbox); empty means Stripe itself.
STRIPE_API_BASE: str = env.str("STRIPE_API_BASE", default="")
# Bounded time (docs/payments.md, "Talking to Stripe"): seconds per HTTP attempt to
# connect and to wait for the answer, and the wall-clock budget that all Stripe calls of
# one request share (a checkout: create the session, and expire it if the order was
# canceled meanwhile). The gateway's watchdog ends every attempt when the budget does,
# so a request's Stripe part ends at the budget, name resolution aside (no socket timeout
# covers it); the check keeps one connect + read on top as a margin, and that must still
# leave WEB_TIMEOUT_MARGIN seconds for the database work before the web worker's timeout
# (WEB_TIMEOUT, which gunicorn.conf.py reads too).
WEB_TIMEOUT: int = env.int("WEB_TIMEOUT", default=30)
WEB_TIMEOUT_MARGIN = 5
STRIPE_CONNECT_TIMEOUT: float = env.float("STRIPE_CONNECT_TIMEOUT", default=3.0)
STRIPE_READ_TIMEOUT: float = env.float("STRIPE_READ_TIMEOUT", default=8.0)
STRIPE_RETRY_BUDGET: float = env.float("STRIPE_RETRY_BUDGET", default=10.0)
if not 0 < STRIPE_CONNECT_TIMEOUT <= STRIPE_RETRY_BUDGET:
    raise ImproperlyConfigured("STRIPE_CONNECT_TIMEOUT must be > 0 and <= STRIPE_RETRY_BUDGET.")
if not 0 < STRIPE_READ_TIMEOUT <= STRIPE_RETRY_BUDGET:
    raise ImproperlyConfigured("STRIPE_READ_TIMEOUT must be > 0 and <= STRIPE_RETRY_BUDGET.")
if STRIPE_RETRY_BUDGET + STRIPE_CONNECT_TIMEOUT + STRIPE_READ_TIMEOUT > (
    WEB_TIMEOUT - WEB_TIMEOUT_MARGIN
):
    raise ImproperlyConfigured(
        f"STRIPE_RETRY_BUDGET + STRIPE_CONNECT_TIMEOUT + STRIPE_READ_TIMEOUT "
        f"({STRIPE_RETRY_BUDGET + STRIPE_CONNECT_TIMEOUT + STRIPE_READ_TIMEOUT:g} s) must be "
        f"at most WEB_TIMEOUT ({WEB_TIMEOUT} s) minus {WEB_TIMEOUT_MARGIN} s, so that a "
        "checkout ends before the web worker is killed."
    )

# Payment engine.
# The backend's own address as browsers reach it: Stripe sends customers back to the
# built-in return page there when no FRONTEND_URL is set. In production it defaults to
# HTTPS on the first ALLOWED_HOSTS name (TLS ends at the proxy, see docs/deployment.md).
_first_host = ALLOWED_HOSTS[0] if ALLOWED_HOSTS else ""
PUBLIC_URL: str = env.str(
    "PUBLIC_URL",
    default=(
        f"http://127.0.0.1:{PORT}"
        if DEBUG
        else (f"https://{_first_host}" if _first_host and _first_host[0] not in "*." else "")
    ),
).rstrip("/")
# Where the storefront lives, if there is one: its success/cancel pages are then the
# defaults, and its host is one a client's own success_url / cancel_url may point at
# (plus CHECKOUT_REDIRECT_HOSTS).
FRONTEND_URL: str = env.str("FRONTEND_URL", default="").rstrip("/")
if not (FRONTEND_URL or PUBLIC_URL):
    raise ImproperlyConfigured(
        "Set PUBLIC_URL (this server's https:// address) or FRONTEND_URL: Stripe must know "
        "where to send customers after they pay."
    )
if FRONTEND_URL:
    CHECKOUT_SUCCESS_URL = FRONTEND_URL + "/checkout/success?session_id={CHECKOUT_SESSION_ID}"
    CHECKOUT_CANCEL_URL = FRONTEND_URL + "/checkout/cancel"
else:
    # The backend's own page (djangomart/orders/views.py) shows the order either way;
    # a canceled checkout is simply one whose session is still unpaid.
    CHECKOUT_SUCCESS_URL = CHECKOUT_CANCEL_URL = (
        PUBLIC_URL + "/checkout/return?session_id={CHECKOUT_SESSION_ID}"
    )
CHECKOUT_REDIRECT_HOSTS: list[str] = [
    host.strip().lower()
    for host in [
        *(urlsplit(url).hostname or "" for url in (FRONTEND_URL, PUBLIC_URL)),
        # Local frontends are allowed in development only.
        *env.list("CHECKOUT_REDIRECT_HOSTS", default=["localhost", "127.0.0.1"] if DEBUG else []),
    ]
    if host.strip()
]
# Checked now, with checkout's own rule, rather than at the first checkout that uses the
# defaults (whose 422 would blame a client that sent no URL).
for _name, _url in (("FRONTEND_URL", FRONTEND_URL), ("PUBLIC_URL", PUBLIC_URL)):
    if _url and redirect_url_problem(_url, CHECKOUT_REDIRECT_HOSTS) is not None:
        raise ImproperlyConfigured(
            f"{_name} must be an absolute http(s) URL such as https://shop.example (ASCII, "
            f"no user name or spaces), not {_url!r}: Stripe sends customers back there."
        )
# Stripe allows 30 minutes to 24 hours; stock stays reserved that long (at least
# CHECKOUT_SESSION_MIN_MINUTES, see djangomart/payments/checkout.py).
CHECKOUT_EXPIRY_MINUTES: int = env.int("CHECKOUT_EXPIRY_MINUTES", default=60)
if not 30 <= CHECKOUT_EXPIRY_MINUTES <= 1440:
    raise ImproperlyConfigured(
        f"CHECKOUT_EXPIRY_MINUTES must be between 30 and 1440 (Stripe's limits for a Checkout "
        f"Session), not {CHECKOUT_EXPIRY_MINUTES}."
    )
# Processing attempts before an event is `dead` and waits for a human.
STRIPE_EVENT_MAX_ATTEMPTS: int = env.int("STRIPE_EVENT_MAX_ATTEMPTS", default=8)
# Pending orders the reconciliation job looks at per run (each has its own next check).
RECONCILE_BATCH_SIZE: int = env.int("RECONCILE_BATCH_SIZE", default=200)
if RECONCILE_BATCH_SIZE < 1:
    raise ImproperlyConfigured(
        f"RECONCILE_BATCH_SIZE must be at least 1 (orders per reconciliation run), "
        f"not {RECONCILE_BATCH_SIZE}."
    )

# Money received for an order that already expired, failed or was canceled: `accept`
# it (stock reserved again, the order paid; refunded when the stock is gone), `refund`
# it automatically, or `hold` it for a human (flagged `late_payment`).
LATE_PAYMENT_POLICY: str = env.str("LATE_PAYMENT_POLICY", default="accept")
if LATE_PAYMENT_POLICY not in ("accept", "refund", "hold"):
    raise ImproperlyConfigured(
        f"LATE_PAYMENT_POLICY must be accept, refund or hold, not {LATE_PAYMENT_POLICY!r}."
    )
# The event backfill (manage.py reconcile) reads GET /v1/events again from this many
# seconds before the newest event the previous run read (events can become visible
# late); Stripe keeps events 30 days, so it never reads further back than that.
RECONCILE_EVENTS_OVERLAP_SECONDS: int = env.int("RECONCILE_EVENTS_OVERLAP_SECONDS", default=300)
if not 0 <= RECONCILE_EVENTS_OVERLAP_SECONDS <= 86400:
    raise ImproperlyConfigured(
        "RECONCILE_EVENTS_OVERLAP_SECONDS must be between 0 and 86400, "
        f"not {RECONCILE_EVENTS_OVERLAP_SECONDS}."
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # allauth's sessions page (/shop/account/sessions/) formats times with it.
    "django.contrib.humanize",
    "django.contrib.postgres",
    "corsheaders",
    "ninja",
    "procrastinate.contrib.django",
    "django_htmx",
    "djangomart.core",
    # Before the apps whose pages it restyles (allauth's).
    "djangomart.storefront",
    "djangomart.accounts",
    "djangomart.catalog",
    "djangomart.orders",
    "djangomart.payments",
    "djangomart.carts",
    "djangomart.fulfillment",
    "djangomart.notify",
    "djangomart.notify.emails",
    "djangomart.notify.webhooks",
    "djangomart.backoffice",
    # After DjangoMart's apps, whose templates (the branded emails) come first.
    "allauth",
    "allauth.account",
    "allauth.headless",
    "allauth.usersessions",
]

MIDDLEWARE = [
    "djangomart.core.middleware.RequestLogMiddleware",
    # Before anything that may answer: a refused request still needs its CORS headers,
    # and so does the fresh JSON response JsonErrorMiddleware puts in place of a
    # framework's error page, or the NUL guard's 400.
    "corsheaders.middleware.CorsMiddleware",
    "djangomart.core.middleware.JsonErrorMiddleware",
    "djangomart.core.middleware.NulGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "djangomart.storefront.middleware.FormErrorStatusMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
# POST /webhooks/stripe, served by its own handler (djangomart/wsgi.py): JSON errors, the
# NUL guard and SecurityMiddleware (HTTPS redirect, as for every path); none of the
# session, auth, CSRF, messages, static-file or clickjacking work a machine's POST never
# uses, and no request log line (a tenth of the acknowledgement's time in a profile):
# each accepted delivery is its inbox row (received_at, delivery_count), and the view
# logs its refusals and failures. The view checks the Host header itself.
WEBHOOK_MIDDLEWARE = [
    "djangomart.core.middleware.JsonErrorMiddleware",
    "djangomart.core.middleware.NulGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
]

# The storefront's theme folder (docs/storefront.md): templates/ overrides any template
# by its path, static/ any static file (storefront/shop.css). Empty: the reference look.
THEME_DIR: Path | None = (
    Path(env.str("THEME_DIR")).resolve() if env.str("THEME_DIR", default="") else None
)
if THEME_DIR is not None and not THEME_DIR.is_dir():
    raise ImproperlyConfigured(f"THEME_DIR must be a folder, not {THEME_DIR}.")
# Footer text of the storefront (the admin's Brand settings override it).
SHOP_FOOTER_TEXT: str = env.str("SHOP_FOOTER_TEXT", default="")

ROOT_URLCONF = "djangomart.urls"
WSGI_APPLICATION = "djangomart.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # A brand's own templates first (docs/storefront.md), then the apps'.
        "DIRS": [THEME_DIR / "templates"] if THEME_DIR else [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csrf",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "djangomart.storefront.context_processors.brand",
                "djangomart.storefront.context_processors.cart",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = (
    [THEME_DIR / "static"] if THEME_DIR is not None and (THEME_DIR / "static").is_dir() else []
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# In development whitenoise serves straight from the apps, no collectstatic needed.
WHITENOISE_USE_FINDERS = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Production hardening: everything `manage.py check --deploy` asks for is on
# whenever DEBUG is off. TLS is expected to end at a proxy that sets
# X-Forwarded-Proto (see docs/deployment.md).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = not DEBUG
# Load balancers probe health over plain HTTP inside the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = 0 if DEBUG else 60 * 60 * 24 * 365
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# Unsafe API requests made with the session cookie are CSRF-checked (djangomart/api/csrf.py);
# over HTTPS Django also wants their Origin to be the API's own or one of these.
CSRF_TRUSTED_ORIGINS: list[str] = env.list(
    "CSRF_TRUSTED_ORIGINS", default=[FRONTEND_URL] if FRONTEND_URL else []
)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Every record, Django's and gunicorn's included, is one JSON line on stdout
# (djangomart/core/logging.py); gunicorn.conf.py gives its master the same root handler.
LOGGING_CONFIG = "djangomart.core.logging.configure"
LOGGING = json_stdout_logging(
    {
        # Django's defaults print `django` records to stderr in plain text (DEBUG) or
        # mail them to ADMINS, and `django.server` ones to stderr: all of them come here.
        "django": "INFO",
        # Our own line per request replaces Django's; 4xx/5xx are in it too.
        "django.request": "ERROR",
        "django.server": "WARNING",
        "py.warnings": None,
        # procrastinate narrates every job at INFO (a full JSON dump per defer, even in
        # the webhook request); its warnings and errors are what operators need.
        "procrastinate": "WARNING",
    }
)

# The shop as customers see it: the name in emails and the API's texts.
SHOP_NAME: str = env.str("SHOP_NAME", default="DjangoMart")

# Mail: Django's console backend (every email printed to the log) unless EMAIL_URL is
# set, e.g. smtp+tls://user:password@smtp.example.com:587 (django-environ's email_url).
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
if "EMAIL_URL" in env:
    _email = env.email_url("EMAIL_URL")
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email.get("EMAIL_HOST", "")
    EMAIL_PORT = _email.get("EMAIL_PORT") or 25
    EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
    EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
    EMAIL_TIMEOUT = 10  # seconds: a slow SMTP server must not hold a web worker
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default=f"{SHOP_NAME} <shop@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# The shared cache behind every rate limit (allauth's and DjangoMart's): it must be one
# for all gunicorn workers and machines. Django's database cache on the project's own
# PostgreSQL by default (its table is created by core's migration 0001), Redis when
# REDIS_URL is set.
REDIS_URL: str = env.str("REDIS_URL", default="")
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "djangomart_cache",
            # Every client and scope counted in a window is a row. Past MAX_ENTRIES rows
            # (300 by default) any cache.set() (allauth's counters) deletes the expired
            # rows and then a third of the live ones, which resets live rate-limit counts;
            # with room for a busy window's rows only expired ones go. (Django counts the
            # rows at every set: a bound, not "unlimited".)
            "OPTIONS": {"MAX_ENTRIES": 50_000},
        }
    )
}

# Customer accounts: django-allauth's headless API at /_allauth/ (docs/accounts.md), for
# the `browser` client (session cookie + CSRF) and the `app` client (X-Session-Token).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",  # the admin's username login
    "allauth.account.auth_backends.AuthenticationBackend",  # customers: email + password
]
ACCOUNT_ADAPTER = "djangomart.accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
# allauth's own pages too, themed by the storefront under /shop/account/ (its signup,
# login, logout, email verification and password reset), beside the headless API.
HEADLESS_ONLY = False
HEADLESS_SERVE_SPECIFICATION = True
HEADLESS_CLIENTS = ("browser", "app")
HEADLESS_ADAPTER = "djangomart.accounts.adapter.HeadlessAdapter"
# Where the links in the emails of the headless API's steps lead: the frontend's pages,
# or (without one) the storefront's, which this server serves (allauth's own views under
# /shop/account/). A step taken on the storefront always links to the storefront
# (HeadlessAdapter).
if FRONTEND_URL:
    HEADLESS_FRONTEND_URLS = {
        "account_confirm_email": FRONTEND_URL + "/account/verify-email/{key}",
        "account_reset_password": FRONTEND_URL + "/account/password/reset",
        "account_reset_password_from_key": FRONTEND_URL + "/account/password/reset/key/{key}",
        "account_signup": FRONTEND_URL + "/account/signup",
    }
else:
    HEADLESS_FRONTEND_URLS = {
        "account_confirm_email": PUBLIC_URL + "/shop/account/confirm-email/{key}/",
        "account_reset_password": PUBLIC_URL + "/shop/account/password/reset/",
        "account_reset_password_from_key": PUBLIC_URL + "/shop/account/password/reset/key/{key}/",
        "account_signup": PUBLIC_URL + "/shop/account/signup/",
    }
# The storefront's pages: where login_required sends a guest, and where a login or a
# logout lands when no ?next= says otherwise.
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "storefront:account-orders"
ACCOUNT_LOGOUT_REDIRECT_URL = "storefront:home"

# CORS: the white-label frontends on other origins (comma-separated, e.g.
# https://shop.example,https://app.shop.example). Credentials are allowed for the browser
# client's session cookie; the API's own headers may be sent.
CORS_ALLOWED_ORIGINS: list[str] = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_CREDENTIALS = True
# Not the staff API: it takes the admin's session cookie (a staff frontend is served with
# the admin, same origin), which a storefront's origin must never drive.
CORS_URLS_REGEX = r"^/(api/v1/(?!staff/)|_allauth/).*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-csrftoken",
    "x-requested-with",
    "x-session-token",
    "x-cart-token",
    "x-order-token",
    "idempotency-key",
)
CORS_EXPOSE_HEADERS = ("retry-after",)

# Rate limits of DjangoMart's own endpoints (djangomart/core/ratelimit.py), per client
# (the customer, else the client address) in the shared cache: "N/s", "N/m" or "N/h".
RATE_LIMIT_CHECKOUT: str = env.str("RATE_LIMIT_CHECKOUT", default="60/m")
RATE_LIMIT_CART_WRITE: str = env.str("RATE_LIMIT_CART_WRITE", default="300/m")
RATE_LIMIT_ORDER_SYNC: str = env.str("RATE_LIMIT_ORDER_SYNC", default="120/m")
for _name in ("RATE_LIMIT_CHECKOUT", "RATE_LIMIT_CART_WRITE", "RATE_LIMIT_ORDER_SYNC"):
    rate_parse(vars()[_name])  # ImproperlyConfigured now, not at the first request
# How many proxies in front of the web server append to X-Forwarded-For: 0 means the
# client is REMOTE_ADDR; behind one proxy (docs/deployment.md), 1.
PROXY_HOPS: int = env.int("PROXY_HOPS", default=0)
if PROXY_HOPS < 0:
    raise ImproperlyConfigured(f"PROXY_HOPS must be 0 or more, not {PROXY_HOPS}.")

# Carts (docs/carts.md): a cart with no activity (created, lines changed, checked out,
# merged) for this many days is deleted by the periodic `carts_idle_delete` job.
CART_GUEST_IDLE_DAYS: int = env.int("CART_GUEST_IDLE_DAYS", default=30)
CART_CUSTOMER_IDLE_DAYS: int = env.int("CART_CUSTOMER_IDLE_DAYS", default=90)

# --- Retention (docs/operations.md, "Retention") ---
# Stripe event payloads, and the outbox's payloads, rendered emails and webhook delivery
# logs, are pruned by the daily `retention_prune` job once older than these many days;
# each row stays as the audit trail (ids, type, status, order, counts).
STRIPE_EVENT_RETENTION_DAYS: int = env.int("STRIPE_EVENT_RETENTION_DAYS", default=90)
NOTIFY_RETENTION_DAYS: int = env.int("NOTIFY_RETENTION_DAYS", default=90)
# Rows per pruning statement, each its own short transaction (never a long lock).
RETENTION_BATCH_SIZE: int = env.int("RETENTION_BATCH_SIZE", default=500)
for _name in ("STRIPE_EVENT_RETENTION_DAYS", "NOTIFY_RETENTION_DAYS", "RETENTION_BATCH_SIZE"):
    if vars()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, not {vars()[_name]}.")

# --- Customer and staff emails (docs/emails.md) ---
# Who gets the staff emails (an order needs attention, a dispute opened), comma-separated;
# empty: no staff email is queued.
STAFF_NOTIFY_EMAILS: list[str] = [
    address.strip() for address in env.list("STAFF_NOTIFY_EMAILS", default=[]) if address.strip()
]
# The emails' branding (with SHOP_NAME): a logo image's https:// URL (empty: the name as
# text) and two colours, #rgb or #rrggbb: the header band and the buttons and links.
SHOP_LOGO_URL: str = env.str("SHOP_LOGO_URL", default="")
SHOP_PRIMARY_COLOR: str = env.str("SHOP_PRIMARY_COLOR", default="#1f2937")
SHOP_ACCENT_COLOR: str = env.str("SHOP_ACCENT_COLOR", default="#2563eb")
if SHOP_LOGO_URL and urlsplit(SHOP_LOGO_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"SHOP_LOGO_URL must be an http(s) URL, not {SHOP_LOGO_URL!r}.")
for _name in ("SHOP_PRIMARY_COLOR", "SHOP_ACCENT_COLOR"):
    # Checked: the value goes into the emails' CSS as it is.
    _colour = vars()[_name]
    if not is_colour(_colour):
        raise ImproperlyConfigured(f"{_name} must be a colour such as #1f2937, not {_colour!r}.")

# --- Outbound webhooks (docs/webhooks-outbound.md) ---
# Each attempt's timeouts: to connect, and between bytes of the answer (seconds).
OUTBOUND_WEBHOOK_CONNECT_TIMEOUT: float = env.float("OUTBOUND_WEBHOOK_CONNECT_TIMEOUT", default=3.0)
OUTBOUND_WEBHOOK_READ_TIMEOUT: float = env.float("OUTBOUND_WEBHOOK_READ_TIMEOUT", default=10.0)
# ... and for the whole attempt, connect to last byte read: the read timeout counts from
# each byte, so a receiver trickling its answer would hold a sender for minutes. At most
# 240 s, under the delivery's claim lease (5 minutes, notify/webhooks/services.py), so
# that no second attempt starts while one is still running.
OUTBOUND_WEBHOOK_TOTAL_TIMEOUT: float = env.float("OUTBOUND_WEBHOOK_TOTAL_TIMEOUT", default=30.0)
# Retries: the first after RETRY_BASE seconds, each next one twice as late, at most
# RETRY_MAX apart, until RETRY_WINDOW seconds after the cycle's first attempt (3 days).
OUTBOUND_WEBHOOK_RETRY_BASE: float = env.float("OUTBOUND_WEBHOOK_RETRY_BASE", default=60.0)
OUTBOUND_WEBHOOK_RETRY_MAX: float = env.float("OUTBOUND_WEBHOOK_RETRY_MAX", default=6 * 3600.0)
OUTBOUND_WEBHOOK_RETRY_WINDOW: float = env.float(
    "OUTBOUND_WEBHOOK_RETRY_WINDOW", default=3 * 24 * 3600.0
)
# Endpoints on loopback, private or link-local addresses, and plain http: refused unless
# this is on (it is in development, with DEBUG).
OUTBOUND_WEBHOOK_ALLOW_PRIVATE: bool = env.bool("OUTBOUND_WEBHOOK_ALLOW_PRIVATE", default=DEBUG)
# Deliveries sent at once by the dedicated worker `make run` starts (devtools/run.py).
OUTBOUND_WEBHOOK_CONCURRENCY: int = env.int("OUTBOUND_WEBHOOK_CONCURRENCY", default=4)
for _name in ("OUTBOUND_WEBHOOK_CONNECT_TIMEOUT", "OUTBOUND_WEBHOOK_READ_TIMEOUT"):
    if not 0 < vars()[_name] <= 60:
        raise ImproperlyConfigured(f"{_name} must be more than 0 and at most 60 seconds.")
if not OUTBOUND_WEBHOOK_CONNECT_TIMEOUT <= OUTBOUND_WEBHOOK_TOTAL_TIMEOUT <= 240:
    raise ImproperlyConfigured(
        "OUTBOUND_WEBHOOK_TOTAL_TIMEOUT must be at least OUTBOUND_WEBHOOK_CONNECT_TIMEOUT"
        " and at most 240 seconds."
    )
if OUTBOUND_WEBHOOK_RETRY_BASE < 0 or OUTBOUND_WEBHOOK_RETRY_MAX < OUTBOUND_WEBHOOK_RETRY_BASE:
    raise ImproperlyConfigured(
        "OUTBOUND_WEBHOOK_RETRY_BASE must be 0 or more, and OUTBOUND_WEBHOOK_RETRY_MAX at least it."
    )
if OUTBOUND_WEBHOOK_CONCURRENCY < 1:
    raise ImproperlyConfigured("OUTBOUND_WEBHOOK_CONCURRENCY must be 1 or more.")

# --- Metrics (docs/operations.md) ---
# GET /metrics (djangomart/core/metrics_view.py): with METRICS_TOKEN set, only for
# `Authorization: Bearer <METRICS_TOKEN>`; without it, open when DEBUG or METRICS_PUBLIC
# (a network the proxy does not expose), else a 404.
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
METRICS_PUBLIC: bool = env.bool("METRICS_PUBLIC", default=False)
# Multi-process mode: every process of a machine writes its counts under this directory
# (prometheus_client reads the variable itself, at import). It must exist, be shared by
# the machine's web and worker processes, and be emptied before they start.
_metrics_dir: str = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if _metrics_dir and not Path(_metrics_dir).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir!r} is not a directory: create it (empty) "
        "before starting the shop's processes, or unset it."
    )
# A scrape runs through the webhook's short list (djangomart/wsgi.py): no session, auth,
# CSRF or request log per scrape.
METRICS_MIDDLEWARE = WEBHOOK_MIDDLEWARE
# Scrapers reach each web process over the private network, as load balancers' probes do.
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^metrics$"]
