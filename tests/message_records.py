"""Message records as a Send opens them, for tests of the stores, the ledger and listing."""

from __future__ import annotations

import time

from gateway.ids import new_message_id
from gateway.lifecycle.states import ACCEPTED, timestamp
from generated.notify.v1 import notification_service_pb2 as pb


def accepted_record(
    tenant: str = "acme",
    *,
    message_id: str | None = None,
    created: float | None = None,
    account: str = "team-wecom",
    labels: dict[str, str] | None = None,
) -> pb.MessageRecord:
    """A new record in ACCEPTED, with its first history entry; ``created`` defaults to now."""
    at = timestamp(time.time() if created is None else created)
    record = pb.MessageRecord(
        message_id=message_id or new_message_id(),
        tenant=tenant,
        account=account,
        channel="wecom_robot",
        kind="text",
        state=ACCEPTED,
        labels=labels or {},
        create_time=at,
        update_time=at,
    )
    record.history.add(state=ACCEPTED, time=at, reason="accepted")
    return record
