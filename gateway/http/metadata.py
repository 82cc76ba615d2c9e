"""What of an HTTP request's headers becomes gRPC metadata, and the call's deadline.

Only what the gRPC side reads is forwarded: ``authorization`` (the auth interceptor's
``Bearer <api key>``) and the W3C trace context (made here from the HTTP span, which continues the
caller's ``traceparent``). A header value gRPC could not carry (not printable ASCII) is dropped,
never logged: it may be a key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from opentelemetry import propagate

from gateway.errors import InvalidArgument, Violation

FORWARDED = ("authorization",)
TIMEOUT_HEADER = "grpc-timeout"
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def forwarded_metadata(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The call's metadata: the caller's credentials and the current span's trace context."""
    metadata = [
        (name, value)
        for name in FORWARDED
        if (value := headers.get(name)) is not None and value.isascii() and value.isprintable()
    ]
    carrier: dict[str, str] = {}
    propagate.inject(carrier)  # traceparent (and tracestate) of the HTTP span: the RPC is its child
    metadata.extend((key.lower(), value) for key, value in carrier.items())
    return tuple(metadata)


def deadline(headers: Mapping[str, str], ceiling: float) -> float:
    """Seconds the call may take: the ``grpc-timeout`` header (as gRPC writes it: ``10S``, ``500m``),
    never more than the configured ``ceiling``; the ceiling without the header.
    """
    value = headers.get(TIMEOUT_HEADER)
    if value is None:
        return ceiling
    found = _TIMEOUT.match(value.strip())
    if found is None:
        raise InvalidArgument(
            [Violation(TIMEOUT_HEADER, "must be up to 8 digits and a unit H, M, S, m, u or n (10S)")]
        )
    return min(ceiling, int(found.group(1)) * _UNITS[found.group(2)])
