"""Keeps an error's status small enough for any gRPC client to receive.

A status travels in the trailers: its message in ``grpc-message`` (percent-encoded, up to 3 bytes
per byte) and its details in ``grpc-status-details-bin`` (base64). Clients refuse trailers over
8 KiB some of the time and over 16 KiB always (RESOURCE_EXHAUSTED "received metadata size
exceeds hard limit"), and error texts echo what the caller sent: an unknown account name, a
message_id, a label key in a field path. A caller who sent 70,000 characters there would get that
useless error instead of ours. So each text is clipped, and violations past the budget are
counted instead of listed; worst case, about 6 KiB of trailers.
"""

from __future__ import annotations

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

MESSAGE_BYTES = 512  # the status message, UTF-8
TEXT_BYTES = 256  # a violation's field or description, an ErrorInfo metadata value
DETAILS_BYTES = 3072  # the serialized status with its details
_MORE = "…"


def clip(text: str, limit: int) -> str:
    """The text cut to ``limit`` UTF-8 bytes at a character boundary, marked when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - len(_MORE.encode())].decode(errors="ignore") + _MORE


def bounded(status: status_pb2.Status) -> status_pb2.Status:
    """The status with its texts clipped and its violations cut to fit DETAILS_BYTES."""
    out = status_pb2.Status(code=status.code, message=clip(status.message, MESSAGE_BYTES))
    for detail in status.details:
        out.details.append(_bounded_detail(detail))
    bad_requests = [d for d in out.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    if bad_requests and out.ByteSize() > DETAILS_BYTES:
        _fit_violations(out, bad_requests[0])
    return out


def _bounded_detail(detail: any_pb2.Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
        bad = error_details_pb2.BadRequest()
        detail.Unpack(bad)
        for violation in bad.field_violations:
            violation.field = clip(violation.field, TEXT_BYTES)
            violation.description = clip(violation.description, TEXT_BYTES)
        packed.Pack(bad)
    elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
        info = error_details_pb2.ErrorInfo()
        detail.Unpack(info)
        for key, value in list(info.metadata.items()):
            info.metadata[key] = clip(value, TEXT_BYTES)
        packed.Pack(info)
    else:
        packed.CopyFrom(detail)
    return packed


def _fit_violations(status: status_pb2.Status, packed: any_pb2.Any) -> None:
    """Drops the last violations until the status fits, and says how many were left out."""
    bad = error_details_pb2.BadRequest()
    packed.Unpack(bad)
    listed = list(bad.field_violations)
    while listed:
        listed.pop()
        left_out = len(bad.field_violations) - len(listed)
        note = error_details_pb2.BadRequest.FieldViolation(
            field="", description=f"{left_out} more violations not listed"
        )
        packed.Pack(error_details_pb2.BadRequest(field_violations=[*listed, note]))
        if status.ByteSize() <= DETAILS_BYTES:
            return
