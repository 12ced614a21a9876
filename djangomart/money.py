"""Money is an integer amount in the currency's minor unit plus a lowercase ISO-4217 code,
exactly as Stripe sends it. This module is the one place that knows how many decimals a
currency has; nothing in DjangoMart ever uses a float for money."""

import re

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
    return f"{format_number(amount, currency)} {currency.upper()}"


def format_number(amount: int, currency: str) -> str:
    """`1250, "usd"` -> `"12.50"`: the amount in major units, as parse_amount reads it."""
    exponent = currency_exponent(currency)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exponent)
    number = f"{major}.{minor:0{exponent}d}" if exponent else str(major)
    return f"{sign}{number}"


_AMOUNT_TEXT = re.compile(r"(\d{1,15})(?:\.(\d*))?")


def parse_amount(text: str, currency: str) -> int:
    """What a person typed, in major units, to minor units: `"12.5", "usd"` -> 1250,
    `"500", "jpy"` -> 500. Only digits and one decimal point (no sign, no exponent, no
    thousands separator); more decimals than the currency has is a ValueError, never
    rounded."""
    match = _AMOUNT_TEXT.fullmatch(text.strip())
    if match is None:
        raise ValueError("Enter an amount such as 12.50 (digits and a decimal point).")
    exponent = currency_exponent(currency)
    minor = match.group(2) or ""
    if len(minor) > exponent:
        places = f"{exponent} decimal places" if exponent else "no decimal places"
        raise ValueError(f"{currency.upper()} amounts have {places}.")
    scale: int = 10**exponent
    return int(match.group(1)) * scale + int(minor.ljust(exponent, "0") or "0")
