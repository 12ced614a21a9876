"""String types for API input.

PostgreSQL text cannot hold NUL (U+0000): a NUL that reached a query would be a database
error, so every input string refuses it here, with a clean 422, and the OpenAPI schema
says so with a pattern. (NULs in the URL or in headers are stopped even earlier, by
`djangomart.core.middleware.NulGuardMiddleware`.)
"""

from typing import Annotated, Any

from ninja import Field
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

NO_NUL_PATTERN = r"^[^\x00]*$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "Must not contain NUL characters")
    return value


class _NulFree:
    """`Annotated[str, NulFree]`: refuses NUL; documents it unless a pattern already does."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_no_nul, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", NO_NUL_PATTERN)
        return json_schema


NulFree = _NulFree()

Text = Annotated[str, NulFree]
"""Free text (search terms): any characters but NUL."""

HttpUrl = Annotated[str, Field(max_length=2000), NulFree]
"""An absolute http(s) URL; the service checks it (see checkout.redirect_url_check). Not
`format: uri`: Stripe's `{CHECKOUT_SESSION_ID}` template has braces, which RFC 3986
does not allow, so the schema states the rule as a pattern instead."""
