"""Money is an integer amount in the currency's minor unit plus a lowercase ISO-4217 code,
exactly as Stripe sends it. This module is the one place that knows how many decimals a
currency has; nothing in DjangoMart ever uses a float for money."""

# Stripe's lists: https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
     "xaf", "xof", "xpf"}
)  # fmt: skip
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

CURRENCY_PATTERN = r"^[a-z]{3}$"


def currency_exponent(currency: str) -> int:
    """How many decimal digits one major unit of `currency` has (JPY 0, USD 2, KWD 3)."""
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def format_amount(amount: int, currency: str) -> str:
    """`1250, "usd"` -> `"12.50 USD"`; `500, "jpy"` -> `"500 JPY"`. For humans (admin), not APIs."""
    exponent = currency_exponent(currency)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exponent)
    number = f"{major}.{minor:0{exponent}d}" if exponent else str(major)
    return f"{sign}{number} {currency.upper()}"
