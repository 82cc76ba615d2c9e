"""Turns exceptions into gRPC statuses with rich details: the one place errors reach the wire.

A GatewayError becomes its status with google.rpc details in ``grpc-status-details-bin`` (grpcio-status's
``rpc_status.to_status`` makes the code, message and trailer from the one google.rpc.Status); anything
else is a bug on our side and becomes INTERNAL with a generic message (the log has the trace).
``context.abort`` with trailing metadata is used rather than ``abort_with_status``, which the
OpenTelemetry aio instrumentation records as status 0.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from gateway.errors import DeadlineExceeded, GatewayError, VendorError
from gateway.interceptors.cancellation import deadline_passed
from gateway.interceptors.status_size import bounded
from gateway.interceptors.tracing import mark_span_failed
from gateway.interceptors.wrap import HandlerWrapper, Invoke
from gateway.redaction import redact

log = logging.getLogger("gateway.errors")


def status_of(error: GatewayError) -> status_pb2.Status:
    details = []
    for detail in error.details():
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    code = error.status_code.value[0]
    # Bounded: error texts echo caller input, and trailers over 16 KiB never reach the caller.
    return bounded(status_pb2.Status(code=code, message=redact(error.message), details=details))


class ErrorInterceptor(HandlerWrapper):
    async def around(
        self, invoke: Invoke, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        try:
            return await invoke(request, context)
        except GatewayError as error:
            status = _failure(error, context)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unhandled error in %s", method)
            mark_span_failed(grpc.StatusCode.INTERNAL, "internal error", {})
            status = _INTERNAL
        # Abort after the except blocks, never inside one: grpc keeps the AbortError in the call's
        # state, and raised while handling the failure it would hold it as __context__, and through
        # its traceback every frame of the failed call with their locals (an upload's bytes).
        rich = rpc_status.to_status(status)
        await context.abort(rich.code, rich.details, trailing_metadata=rich.trailing_metadata)


_INTERNAL = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see the gateway log")


def _failure(error: GatewayError, context: grpc.aio.ServicerContext) -> status_pb2.Status:
    """The status a failure is answered with, marked on the span; it keeps no reference to the error."""
    if error.status_code != grpc.StatusCode.DEADLINE_EXCEEDED and deadline_passed(context):
        # The caller has stopped waiting: what it sees, and what logs and metrics record, is
        # its deadline, whatever else went wrong on the way (a vendor timeout cut short by it).
        error = DeadlineExceeded(
            f"the call's deadline passed: {error.message}",
            reason=error.reason,
            metadata=error.metadata,
        )
    status = status_of(error)
    mark_span_failed(error.status_code, status.message, _span_attributes(error))
    return status


def _span_attributes(error: GatewayError) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {"notify.error.reason": error.reason}
    if isinstance(error, VendorError):
        attributes["notify.vendor.errcode"] = error.errcode
        attributes["notify.vendor.errmsg"] = error.errmsg  # already redacted
    return attributes
