"""Keeps credentials out of everything the gateway writes: logs, errors, spans.

Two nets: the exact secret values from the config (whatever field they sit in), and the query
parameters that carry credentials in vendor URLs (docs/vendors.md: access_token, key, sign...).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"
#: Query parameters that carry credentials in vendor URLs (docs/vendors.md, all four channels).
CREDENTIAL_PARAMS = frozenset(
    {"access_token", "key", "sign", "timestamp", "corpsecret", "appsecret", "secret"}
)
_CREDENTIAL_PARAMS = re.compile(rf"(?i)\b({'|'.join(sorted(CREDENTIAL_PARAMS))})=([^&\s\"']+)")
_MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def register_secrets(values: Iterable[str]) -> None:
    """Adds secret values that must never be written anywhere (called when config is loaded)."""
    global _secrets
    with _lock:
        _secrets = _secrets | {v for v in values if len(v) >= _MIN_SECRET_LENGTH}


def redact(text: str) -> str:
    """Returns text with every known secret and every credential query parameter masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _CREDENTIAL_PARAMS.sub(lambda m: f"{m.group(1)}={MASK}", text)


class RedactingFilter(logging.Filter):
    """Masks secrets in every record, whatever logger wrote it (aiohttp, grpc, ours)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
