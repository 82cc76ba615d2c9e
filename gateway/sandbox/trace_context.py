"""Reads the trace id out of a W3C `traceparent` header (https://www.w3.org/TR/trace-context/).

The gateway injects trace context into its vendor calls, so the sandbox can show each message with
the id of the gateway trace that sent it. Parsed here rather than with OpenTelemetry's propagator
because the sandbox only shows the id and must never be made to fail by a malformed header.
"""

from __future__ import annotations

import re
from typing import Final

_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_INVALID_TRACE_ID: Final = "0" * 32


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex-digit trace id, or None when the header is missing or not a valid traceparent.

    Version ff is invalid; the all-zero trace id is invalid; versions above 00 may append fields.
    """
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None:
        return None
    version, trace_id, _, _, rest = match.groups()
    if version == "ff" or trace_id == _INVALID_TRACE_ID or (version == "00" and rest):
        return None
    return trace_id
