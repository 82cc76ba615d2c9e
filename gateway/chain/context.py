"""What travels along a chain: the request, who asked, and what earlier steps found out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from gateway.channels.base import ChannelAdapter
from gateway.channels.deliveries import Outgoing
from gateway.store.rate_limits import Admission
from gateway.store.records import StoredRecord
from gateway.telemetry import call_facts

RequestT = TypeVar("RequestT")


@dataclass(slots=True)
class CallContext(Generic[RequestT]):
    operation: str  # the chain's name: send, recall, upload
    request: RequestT
    deadline: float | None = None  # time.monotonic() by which the caller stops waiting
    tenant: str = ""  # set by authentication; "" when the gateway runs open (auth: none)
    account_id: str = ""  # the account the request acts on (from the request, or its message record)
    message_id: str = ""
    adapter: ChannelAdapter | None = None  # set by resolve_account
    outgoing: Outgoing | None = None  # set by check_message
    record: StoredRecord | None = None  # the message's record: the Send's own (record_message) or looked up
    resend: StoredRecord | None = None  # an UNKNOWN message this Send may deliver again (deduplicate)
    owner: str = ""  # the Send's claim on its record (record_message), for its lease
    rate_admission: Admission | None = None  # the account's rate slot, if its admission asked for one
    settled: bool = False  # the Send's outcome is written (or being written) to its record
    attributes: dict[str, Any] = field(default_factory=dict)  # for steps that add their own facts
    span: trace.Span = field(default_factory=trace.get_current_span)  # the RPC's server span
    # The call's facts, which the tracing interceptor writes on ``span`` as the call ends; None
    # outside a gRPC call, where ``annotate`` writes on the span at once.
    facts: dict[str, AttributeValue] | None = field(default_factory=call_facts.get)

    def annotate(self, key: str, value: str) -> None:
        """Puts a fact an SRE searches by (notify.account, notify.message_id...) on the RPC's span."""
        facts = self.facts
        if facts is None:
            self.span.set_attribute(key, value)
        else:
            facts[key] = value

    @classmethod
    def with_timeout(
        cls, operation: str, request: RequestT, time_remaining: float | None
    ) -> CallContext[RequestT]:
        deadline = None if time_remaining is None else time.monotonic() + time_remaining
        return cls(operation, request, deadline)

    def require_record(self) -> StoredRecord:
        if self.record is None:
            raise RuntimeError(f"{self.operation} chain: no message record before this step")
        return self.record

    def require_adapter(self) -> ChannelAdapter:
        if self.adapter is None:
            raise RuntimeError(f"{self.operation} chain: no account resolved before this step")
        return self.adapter
