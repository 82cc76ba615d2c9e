"""Reads the google.rpc details a gateway error carries, the way a client library would."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class RichError:
    code: grpc.StatusCode
    message: str
    violations: dict[str, str] = field(default_factory=dict)
    error_info: error_details_pb2.ErrorInfo | None = None
    retry_delay: float | None = None


def rich_error(error: grpc.aio.AioRpcError | grpc.Call) -> RichError:
    found = RichError(error.code(), error.details() or "")
    # from_call raises ValueError unless the trailer's status has the call's code and message.
    status = rpc_status.from_call(error)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                found.violations = {v.field: v.description for v in bad.field_violations}
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                found.error_info = error_details_pb2.ErrorInfo()
                detail.Unpack(found.error_info)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                found.retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
    return found
