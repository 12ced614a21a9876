"""What the shop's processes write: the README promises one JSON object per stdout line."""

import json
from typing import Any

import pytest


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed; a line that is not one JSON object fails with the line shown."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line on stdout: {line!r}")
        assert isinstance(record, dict), line
        records.append(record)
    return records
