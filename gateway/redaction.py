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
#: What each pattern above needs somewhere in a text to match: "=" (a parameter), "bearer",
#: "authorization", b' or b" (a bytes repr). Most texts (an id, an address, a status) hold none,
#: and one search for all of them costs less than the four substitutions that would find nothing.
#: ASCII texts are checked without it (``_may_match``).
_CANDIDATE = re.compile(r"""=|(?i:bearer|authorization)|b['"]""")
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
    return _patterns(_known(text))


def redact_log(text: str) -> str:
    """``redact``, and every bytes repr masked whole: log lines only (see _BYTES_REPR)."""
    text = _known(text)
    if not _may_match(text):  # no pattern below can match: skip all four
        return text
    return _BYTES_REPR.sub(_BYTES_MASK, _substitute(text))


def _known(text: str) -> str:
    """The first net, apart: a log line needs it on every string, the patterns only on candidates."""
    for known in (_secrets, _live_tokens):
        for secret in known:
            if secret in text:
                text = text.replace(secret, MASK)
    return text


def _patterns(text: str) -> str:
    """The credential-parameter, Bearer and authorization nets, on a text that may need them."""
    return _substitute(text) if _may_match(text) else text


def _substitute(text: str) -> str:
    """The three nets' substitutions, for a text ``_may_match`` has let through."""
    text = _CREDENTIAL_PARAMS.sub(_mask_param, text)
    text = _BEARER.sub(_mask_bearer, text)
    return _AUTHORIZATION.sub(_mask_authorization, text)


_BYTES_MASK = f"b'{MASK}'"


def _mask_param(match: re.Match[str]) -> str:
    return f"{match.group(1)}={MASK}"


def _mask_bearer(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}{MASK}"


def _mask_authorization(match: re.Match[str]) -> str:
    return f"{match.group(1)}{MASK}"


class RedactingFilter(logging.Filter):
    """Masks secrets in every record, whatever logger wrote it (aiohttp, grpc, ours)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        fields = vars(record)
        # Fields passed with extra= (an error's text, a URL) are written to the JSON line too; only
        # strings can hold a secret as written (numbers and flags cannot).
        extras = [name for name in fields.keys() - _RECORD_FIELDS if isinstance(fields[name], str)]
        # Most lines hold nothing to mask. One look at all their texts at once (each secret
        # searched for once, not once per field) tells; a hit, even a false one across the
        # separator, goes through the masking below, text by text, so the outcome is the same.
        if _may_need_masking("\x00".join([message, *[fields[name] for name in extras]])):
            cleaned = redact_log(message)
            for name in extras:
                fields[name] = redact_log(fields[name])
        else:
            cleaned = message
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_log(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_log(record.exc_text)
        return True


def _may_need_masking(text: str) -> bool:
    """False when ``redact_log`` would return text unchanged: no known secret, no pattern's cue."""
    for known in (_secrets, _live_tokens):
        for secret in known:
            if secret in text:
                return True
    return _may_match(text)


def _may_match(text: str) -> bool:
    """Whether ``_CANDIDATE`` finds something in ``text``, by substring tests for an ASCII text.

    The regex tries its case-insensitive words at every position: ~55k instructions for an access
    log line's 150 characters, a quarter of the line's cost; these tests take a few hundred.
    Outside ASCII the regex decides: its case-insensitive match also takes U+0130 and U+0131 for
    'i', U+017F for 's' and U+212A for 'k', where ``lower()`` differs.
    """
    if not text.isascii():
        return _CANDIDATE.search(text) is not None
    if "=" in text or "b'" in text or 'b"' in text:
        return True
    lowered = text.lower()
    return "bearer" in lowered or "authorization" in lowered


_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
