"""Keeps credentials out of everything the gateway writes: logs, errors, spans.

Three nets: the exact secret values the gateway knows (the config's, and every access token a
vendor issued while it may still be echoed back), the query parameters that carry credentials in
vendor URLs (docs/vendors.md: access_token, key, sign...), and whatever follows ``authorization`` or
``Bearer``: a caller's API key cannot be known in advance, and grpc logs a header it cannot decode.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable

MASK = "***"
#: Query parameters that carry credentials in vendor URLs (docs/vendors.md, all four channels).
CREDENTIAL_PARAMS = frozenset(
    {"access_token", "key", "sign", "timestamp", "corpsecret", "appsecret", "secret"}
)
_CREDENTIAL_PARAMS = re.compile(rf"(?i)\b({'|'.join(sorted(CREDENTIAL_PARAMS))})=([^&\s\"']+)")
_MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words
# A value after "Bearer" or an authorization key: up to a quote, a space or a separator, an escape
# such as \xff (a bytes repr) counting as part of it; a placeholder such as <api key> is not one.
_VALUE = r"""(?!<)(?:\\.|[^\s'"\\,;)\]}])+"""
_BEARER = re.compile(rf"(?i)\b(bearer)(\s+|\\x20|\\t)({_VALUE})")
# authorization: X, authorization=Basic X, 'authorization': 'X', ('authorization', b'X'), ...: the
# value, with the scheme before it if there is one (but not a placeholder: 'Bearer <api key>').
_AUTHORIZATION = re.compile(
    rf"""(?i)\b(authorization(?:\s*[:=]|['"]\s*[:=,])\s*(?-i:b)?['"]?)"""
    rf"""(?!(?-i:b)['"]|[a-z]+\s+<)((?:[a-z]+(?:\s+|\\x20))?{_VALUE})"""
)
#: A bytes repr, b'...' or b"...": how grpc logs a metadata value it cannot decode (whatever the
#: header, so possibly a key sent without a scheme). Masked whole in log lines.
_BYTES_REPR = re.compile(r"""\bb(?:'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")""")
#: Access tokens are remembered this long after they expire (a late answer may still echo one)...
TOKEN_MEMORY_SECONDS = 600.0
#: ...and at most this many at once: the oldest are forgotten first.
MAX_TOKENS = 4096

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_tokens: dict[str, float] = {}  # access token -> unix time after which it may be forgotten
_live_tokens: frozenset[str] = frozenset()  # a snapshot of _tokens, read without the lock


def register_secrets(values: Iterable[str]) -> None:
    """Adds secret values that must never be written anywhere (called when config is loaded)."""
    global _secrets
    with _lock:
        _secrets = _secrets | {v for v in values if len(v) >= _MIN_SECRET_LENGTH}


def register_token(token: str, expires_at: float) -> None:
    """Adds an access token a vendor issued (expiring at unix time ``expires_at``) to the secrets.

    A vendor may echo the token in an errmsg in any form ("invalid access_token: T"), which the
    query-parameter net does not catch. Tokens are forgotten a while after they expire, and the
    registry is bounded, so a long-running gateway does not scan an ever-growing list.
    """
    global _live_tokens
    if len(token) < _MIN_SECRET_LENGTH:
        return
    now = time.time()
    with _lock:
        _tokens[token] = max(_tokens.get(token, 0.0), expires_at + TOKEN_MEMORY_SECONDS)
        for stale in [t for t, until in _tokens.items() if until < now]:
            del _tokens[stale]
        if len(_tokens) > MAX_TOKENS:
            for oldest in sorted(_tokens, key=_tokens.__getitem__)[: len(_tokens) - MAX_TOKENS]:
                del _tokens[oldest]
        _live_tokens = frozenset(_tokens)


def redact(text: str) -> str:
    """Returns text with every known secret, credential query parameter and auth value masked."""
    for known in (_secrets, _live_tokens):
        for secret in known:
            if secret in text:
                text = text.replace(secret, MASK)
    text = _CREDENTIAL_PARAMS.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _AUTHORIZATION.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact_log(text: str) -> str:
    """``redact``, and every bytes repr masked whole: log lines only (see _BYTES_REPR)."""
    return _BYTES_REPR.sub(f"b'{MASK}'", redact(text))


class RedactingFilter(logging.Filter):
    """Masks secrets in every record, whatever logger wrote it (aiohttp, grpc, ours)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_log(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_log(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_log(record.exc_text)
        for name, value in list(vars(record).items()):
            # Fields passed with extra= (an error's text, a URL) are written to the JSON line too.
            if name not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, name, redact_log(value))
        return True


_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
