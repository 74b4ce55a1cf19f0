"""JSON log lines for the control API: one object per record, with the record's extra fields.

Callers never pass secrets to the logger; as a second line of defence, extra
fields whose names suggest a credential are replaced with "[redacted]".
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}
_SECRET_WORDS = ("password", "secret", "token", "key", "authorization", "cookie")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _STANDARD_ATTRIBUTES or name.startswith("_"):
                continue
            document[name] = "[redacted]" if any(word in name.lower() for word in _SECRET_WORDS) else value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages of database and HTTP errors can contain URLs with passwords.
            document["error"] = record.exc_info[0].__name__
        return json.dumps(document, default=str)


def configure_logging(level: str) -> None:
    """Send every log record, uvicorn's included, to stderr as JSON at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The request middleware logs each request once, so uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
