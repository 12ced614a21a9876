"""Stripe's form encoding: `a[b][0][c]=1` is `{"a": {"b": [{"c": "1"}]}}`."""

import re
from typing import Any
from urllib.parse import parse_qsl

from stripe_sandbox.errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode(body: str) -> dict[str, Any]:
    """Decodes a form body (or query string) into nested dicts and lists.

    Lists come from numeric indices (`items[0]`) or empty brackets (`expand[]`).
    Raises a StripeError for a malformed key.
    """
    result: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if not match:
            raise invalid(f"Invalid parameter name: {raw_key}", param=raw_key)
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        _insert(result, path, value, raw_key)
    decoded = _listify(result)
    if not isinstance(decoded, dict):
        raise invalid("Parameter names must not be bare numbers.")
    return decoded


def _insert(node: dict[str, Any], path: list[str], value: str, raw_key: str) -> None:
    *parents, last = path
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise invalid(f"Invalid parameter: {raw_key}", param=raw_key)
        node = child
    if last == "":
        last = str(len(node))  # `expand[]=a&expand[]=b` appends
    if last in node and isinstance(node[last], dict):
        raise invalid(f"Invalid parameter: {raw_key}", param=raw_key)
    node[last] = value


def _listify(node: Any) -> Any:
    """Dicts whose keys are exactly 0..n-1 become lists."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        indices = sorted(int(key) for key in converted)
        if indices == list(range(len(indices))):
            return [converted[str(i)] for i in indices]
    return converted
