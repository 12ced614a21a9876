from ninja import Field, Schema


class ErrorDetailOut(Schema):
    location: str = Field(
        description="The bad input: a body field (`email`, `lines.0.quantity`) or "
        "`query.<name>`, `path.<name>`, `header.<Name>`."
    )
    message: str
    type: str = Field(description="A stable machine-readable kind, e.g. `string_too_long`.")


class ErrorOut(Schema):
    """Every error the API returns: branch on `code`, show `message`. Some errors add
    fields of their own (`out_of_stock` names the `sku`, a 502 carries the order's `id`
    and `access_token`)."""

    code: str
    message: str
    details: list[ErrorDetailOut] | None = Field(
        None, description="Validation errors (422): one entry per bad input."
    )


def error_responses(*statuses: int) -> dict[int, type[ErrorOut]]:
    """The error answers of an operation for its `response=`. 400 is always possible
    (a body that is not JSON; a NUL character in the URL or a header)."""
    return {status: ErrorOut for status in sorted({400, *statuses})}


class CsrfOut(Schema):
    csrf_token: str = Field(
        description="Send it back in the `X-CSRFToken` header of unsafe requests made "
        "with the session cookie (the `csrftoken` cookie holds it too)."
    )
