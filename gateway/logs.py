"""Structured logging: one JSON object per line, every line passed through the redaction filter."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from gateway.redaction import RedactingFilter

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


#: Libraries whose own log lines can carry what callers or vendors sent: grpc logs a metadata value
#: it cannot decode (an API key included) at error level, aiohttp logs requests and answers.
LIBRARY_LOGGERS = (
    "grpc",
    "grpc._cython.cygrpc",
    "grpc.aio",
    "grpc._server",
    "grpc._common",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.web",
    "asyncio",
)


def configure_logging(level: str = "INFO") -> None:
    """Every log line, ours or a library's, leaves as JSON through the redacting filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A handler of a library's own would write its lines past the filter: they all go through root.
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = [h for h in library.handlers if isinstance(h, logging.NullHandler)]
        library.propagate = True
    logging.captureWarnings(True)  # warnings quote arguments too: through the same handler
