"""One JSON object per log line, so that log pipelines need no parsing rules.

Every process of the shop (gunicorn's master and workers, the job worker, management
commands) logs through `json_stdout_logging`: one handler, on the root logger, writing
`JsonFormatter` lines to stdout. Named loggers only set a level and propagate there, so
no library's own handler can print a plain-text line beside them.
"""

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str)


def json_stdout_logging(levels: dict[str, str | None]) -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary: the root logger writes JSON lines to
    stdout, and each logger in `levels` (a name and its level, None to keep the level
    it has) loses any handler of its own and propagates to the root.

    A fresh dictionary on each call: dictConfig consumes parts of the one it is given."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
            }
        },
        "root": {"handlers": ["stdout"], "level": "INFO"},
        "loggers": {
            name: {"handlers": [], "propagate": True, **({"level": level} if level else {})}
            for name, level in levels.items()
        },
    }


def configure(config: dict[str, Any]) -> None:
    """settings.LOGGING_CONFIG: dictConfig, plus warnings.warn() through the `py.warnings`
    logger (Django no longer does that), which would otherwise print plain text to stderr."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
