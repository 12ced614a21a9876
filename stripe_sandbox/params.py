"""Typed reading of decoded request parameters, with Stripe's error messages.

Every parameter an endpoint does not read is refused by `finish()` as Stripe refuses
it ("Received unknown parameter: x"), so a typo in the shop fails loudly here
instead of being silently ignored.
"""

from typing import Any

from stripe_sandbox.errors import invalid, missing, unknown_param

ALWAYS_ALLOWED = frozenset({"expand"})


class Params:
    def __init__(self, data: Any, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise invalid(f"Invalid object: {prefix or 'body'}", param=prefix or None)
        self.data: dict[str, Any] = data
        self.prefix = prefix
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.prefix}[{key}]" if self.prefix else key

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise missing(self.name(key))
            return None
        return value

    def text(
        self,
        key: str,
        *,
        required: bool = False,
        max_length: int = 5000,
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(f"Invalid string: {self.name(key)}", param=self.name(key))
        if len(value) > max_length:
            raise invalid(
                f"Invalid string: {self.name(key)} must be at most {max_length} characters",
                param=self.name(key),
            )
        if choices is not None and value not in choices:
            raise invalid(
                f"Invalid {self.name(key)}: must be one of {', '.join(choices)}",
                param=self.name(key),
            )
        return value

    def integer(
        self,
        key: str,
        *,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise invalid(
                f"Invalid integer: {value}", param=self.name(key), code="parameter_invalid_integer"
            ) from None
        if minimum is not None and number < minimum:
            raise invalid(
                f"This value must be greater than or equal to {minimum}.", param=self.name(key)
            )
        if maximum is not None and number > maximum:
            raise invalid(
                f"This value must be less than or equal to {maximum}.", param=self.name(key)
            )
        return number

    def boolean(self, key: str) -> bool | None:
        """`true` or `false`, as the SDK encodes a bool in a form or query string."""
        value = self._get(key, False)
        if value is None:
            return None
        if value in (True, "true"):
            return True
        if value in (False, "false"):
            return False
        raise invalid(f"Invalid boolean: {value}", param=self.name(key))

    def metadata(self, key: str = "metadata") -> dict[str, str]:
        value = self._get(key, False)
        if value is None:
            return {}
        if not isinstance(value, dict) or len(value) > 50:
            raise invalid(f"Invalid hash: {self.name(key)}", param=self.name(key))
        for meta_key, meta_value in value.items():
            if not isinstance(meta_value, str) or len(meta_key) > 40 or len(meta_value) > 500:
                raise invalid(
                    f"Invalid metadata: {self.name(key)}[{meta_key}]", param=self.name(key)
                )
        return dict(value)

    def hash(self, key: str, *, required: bool = False) -> "Params | None":
        value = self._get(key, required)
        return None if value is None else Params(value, self.name(key))

    def array(self, key: str, *, required: bool = False) -> list["Params"]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid(f"Invalid array: {self.name(key)}", param=self.name(key))
        return [Params(item, f"{self.name(key)}[{i}]") for i, item in enumerate(value)]

    # Required variants: the value is present or a "Missing required param" error is raised.
    def required_text(self, key: str, **kw: Any) -> str:
        value = self.text(key, required=True, **kw)
        assert value is not None
        return value

    def required_integer(self, key: str, **kw: Any) -> int:
        value = self.integer(key, required=True, **kw)
        assert value is not None
        return value

    def required_hash(self, key: str) -> "Params":
        value = self.hash(key, required=True)
        assert value is not None
        return value

    def strings(self, key: str) -> list[str]:
        value = self._get(key, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(f"Invalid array: {self.name(key)}", param=self.name(key))
        return list(value)

    def raw(self, key: str) -> Any:
        """The undecoded value (str, list or dict), for parameters with several forms."""
        return self._get(key, False)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.used and key not in ALWAYS_ALLOWED:
                raise unknown_param(self.name(key))
