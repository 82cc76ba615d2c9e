"""What a queued job carries: enough for any worker to deliver the message as the Send asked."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.redis_connection import as_text
from generated.notify.v1 import notification_service_pb2 as pb


@dataclass(frozen=True, slots=True)
class Job:
    entry_id: str  # the stream entry's id: <milliseconds>-<sequence>, so it dates the job
    message_id: str
    tenant: str
    request: pb.SendRequest
    traceparent: str  # the Send's trace, which the worker's delivery span links to
    # The record as the accept wrote it (version 1; b"" in a job queued before jobs carried it): a
    # worker takes the message over with it, by a compare-and-set on version 1, without reading the
    # record first. Any change since (a Recall, a take-over, an expiry) fails that and is read then.
    accepted: bytes = b""

    @staticmethod
    def fields(message_id: str, tenant: str, request: pb.SendRequest, traceparent: str) -> list[bytes | str]:
        """The entry's fields, flattened for XADD in a script (which adds the record, ``r``, itself
        from the bytes it writes: they cross the wire once)."""
        return ["m", message_id, "t", tenant, "q", request.SerializeToString(), "p", traceparent]

    @classmethod
    def decode(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Job:
        return cls(
            entry_id=as_text(entry_id),
            message_id=as_text(fields[b"m"]),
            tenant=as_text(fields.get(b"t", b"")),
            request=pb.SendRequest.FromString(fields[b"q"]),
            traceparent=as_text(fields.get(b"p", b"")),
            accepted=fields.get(b"r", b""),
        )
