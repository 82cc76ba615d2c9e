"""What a Send answers, read from the message's record: the same for a first call and a replay."""

from __future__ import annotations

from gateway.errors import GatewayError
from gateway.lifecycle.states import UNKNOWN, state_name
from generated.notify.v1 import notification_service_pb2 as pb


def send_response(record: pb.MessageRecord, *, duplicate: bool = False) -> pb.SendResponse:
    return pb.SendResponse(
        message_id=record.message_id,
        state=record.state,
        vendor_message_id=record.vendor_message_id,
        rejected_recipients=record.rejected_recipients,
        recallable=record.recallable,
        duplicate=duplicate,
    )


def annotate_error(error: GatewayError, record: pb.MessageRecord) -> None:
    """Tells the caller of a failed Send which message it was and where it stands (ErrorInfo)."""
    error.metadata["message_id"] = record.message_id
    error.metadata["message_state"] = state_name(record.state)
    if record.state == UNKNOWN:
        error.message += (
            f" (message {record.message_id} may have been delivered and is recorded as UNKNOWN: "
            "GetMessage shows it; a retry with the same idempotency_key does not send it again)"
        )
