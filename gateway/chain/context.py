"""What travels along a chain: the request, who asked, and what earlier steps found out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from gateway.channels.base import ChannelAdapter, Outgoing

RequestT = TypeVar("RequestT")


@dataclass(slots=True)
class CallContext(Generic[RequestT]):
    operation: str  # the chain's name: send, recall, upload
    request: RequestT
    deadline: float | None = None  # time.monotonic() by which the caller stops waiting
    tenant: str | None = None
    message_id: str = ""
    adapter: ChannelAdapter | None = None  # set by resolve_account
    outgoing: Outgoing | None = None  # set by check_message
    attributes: dict[str, Any] = field(default_factory=dict)  # for steps that add their own facts

    @classmethod
    def with_timeout(
        cls, operation: str, request: RequestT, time_remaining: float | None
    ) -> CallContext[RequestT]:
        deadline = None if time_remaining is None else time.monotonic() + time_remaining
        return cls(operation, request, deadline)

    def require_adapter(self) -> ChannelAdapter:
        if self.adapter is None:
            raise RuntimeError(f"{self.operation} chain: no account resolved before this step")
        return self.adapter
