"""The record changes a delivery ends with, shared by a sync Send and a queue worker."""

from __future__ import annotations

from gateway.channels.attempts import AttemptLog
from gateway.channels.deliveries import Delivery
from gateway.errors import GatewayError
from gateway.lifecycle.ledger import Mutation
from gateway.lifecycle.states import ACCEPTED, EXPIRED, SENDING, SENT, UNKNOWN, State, advance
from generated.notify.v1 import notification_service_pb2 as pb


def sending(resend: bool) -> Mutation:
    reason = "resending: the vendor drops a repeat" if resend else "calling the vendor"

    def mark(record: pb.MessageRecord) -> None:
        advance(record, SENDING, reason)

    return mark


def sent(delivery: Delivery, attempts: AttemptLog, recallable: bool, awaits_report: bool) -> Mutation:
    def mark(record: pb.MessageRecord) -> None:
        record.attempts.extend(a.to_proto() for a in attempts.attempts)
        record.vendor_message_id = delivery.vendor_message_id
        del record.rejected_recipients[:]
        record.rejected_recipients.extend(
            pb.RejectedRecipient(kind=r.kind, id=r.id, reason=r.reason) for r in delivery.rejected
        )
        record.recallable = recallable
        reason = "accepted by the vendor"
        if delivery.rejected:
            reason += f"; {len(delivery.rejected)} recipients refused (final)"
        if awaits_report:
            reason += "; waiting for its delivery report"
        advance(record, SENT, reason, final=not awaits_report)

    return mark


def failed(state: State, attempts: AttemptLog, exc: BaseException) -> Mutation:
    if isinstance(exc, GatewayError):
        why = exc.message
    else:
        why = "the call was cancelled (deadline passed, caller gone or shutdown)"
    if state == UNKNOWN:
        why = f"may have been delivered: {why}"

    def mark(record: pb.MessageRecord) -> None:
        record.attempts.extend(a.to_proto() for a in attempts.attempts)
        advance(record, state, why)

    return mark


def retry_later(attempts: AttemptLog, why: str, *, expired: bool) -> Mutation:
    """A queued message whose attempts all failed before reaching the vendor: back to ACCEPTED, to
    be tried again after a backoff, or EXPIRED when its expire_after leaves no time for that."""

    def mark(record: pb.MessageRecord) -> None:
        record.attempts.extend(a.to_proto() for a in attempts.attempts)
        if record.state == SENDING:
            advance(record, ACCEPTED, f"not delivered, will retry: {why}")
        if expired:
            advance(record, EXPIRED, f"not delivered before its expire_after: {why}")

    return mark
