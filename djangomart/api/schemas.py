from typing import Any

from ninja import Schema


class ErrorOut(Schema):
    """Every error the API returns: branch on `code`, show `message`."""

    code: str
    message: str
    details: list[dict[str, Any]] | None = None
