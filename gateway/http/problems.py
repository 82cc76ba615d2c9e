"""Failures as HTTP answers: a ``google.rpc.Status`` in JSON, with its details, as grpc-gateway sends.

A failed RPC brings its Status in the ``grpc-status-details-bin`` trailer, made by the gateway's
error interceptor; it is passed on as it is, so HTTP callers read the same BadRequest, ErrorInfo
and RetryInfo as gRPC callers. Failures of the HTTP side itself (no route, a body too large) are
made here as Statuses of the same shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import grpc
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from multidict import CIMultiDict

from gateway.errors import ERROR_DOMAIN, GatewayError
from gateway.http.status_codes import http_status
from gateway.interceptors.errors import status_of

JSON = "application/json"
STATUS_DETAILS_KEY = "grpc-status-details-bin"  # where gRPC carries the google.rpc.Status


class HttpProblem(Exception):
    """A failure answered as a Status with an HTTP status of its own (404, 405, 413)."""

    def __init__(
        self, http: int, status: status_pb2.Status, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status.message)
        self.http = http
        self.status = status
        self.headers = dict(headers or {})


def local_status(code: int, message: str, reason: str) -> status_pb2.Status:
    """A Status made by the HTTP side, with the ErrorInfo every gateway error carries."""
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    return status


def not_found(path: str) -> HttpProblem:
    return HttpProblem(404, local_status(code_pb2.NOT_FOUND, f"no route for {path}", "ROUTE_NOT_FOUND"))


def method_not_allowed(method: str, allowed: tuple[str, ...]) -> HttpProblem:
    # grpc-gateway answers 405 with UNIMPLEMENTED: the RPC exists, not for this method.
    status = local_status(
        code_pb2.UNIMPLEMENTED,
        f"{method} is not allowed here; use {', '.join(allowed)}",
        "METHOD_NOT_ALLOWED",
    )
    return HttpProblem(405, status, {"Allow": ", ".join(allowed)})


def too_large(limit: int) -> HttpProblem:
    status = local_status(
        code_pb2.RESOURCE_EXHAUSTED, f"the request body is larger than {limit} bytes", "BODY_TOO_LARGE"
    )
    violation = error_details_pb2.BadRequest.FieldViolation(
        field="body", description=f"at most {limit} bytes"
    )
    status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    return HttpProblem(413, status)


def body_timeout(seconds: float) -> HttpProblem:
    status = local_status(
        code_pb2.DEADLINE_EXCEEDED, f"the request body did not arrive within {seconds:g} s", "BODY_TIMEOUT"
    )
    return HttpProblem(408, status)


def internal() -> HttpProblem:
    return HttpProblem(
        500, status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see the gateway log")
    )


def from_gateway_error(error: GatewayError) -> HttpProblem:
    """A request refused before its RPC (it did not transcode), as the error interceptor would say it."""
    status = status_of(error)
    return HttpProblem(http_status(status.code), status)


def from_rpc_error(error: grpc.aio.AioRpcError) -> HttpProblem:
    """The RPC's own Status; one without details (a deadline on our side) gets its code and text."""
    code = error.code()
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            break
    else:
        status = status_pb2.Status(code=code.value[0], message=error.details() or code.name)
    return HttpProblem(http_status(status.code), status, _headers(status))


def status_json(status: status_pb2.Status) -> dict[str, object]:
    """The proto3 JSON of a Status; details are Any with their ``@type``, as grpc-gateway writes them."""
    return json_format.MessageToDict(status)


def body_of(problem: HttpProblem) -> bytes:
    return json.dumps(status_json(problem.status), ensure_ascii=False).encode() + b"\n"


def response_headers(problem: HttpProblem) -> CIMultiDict[str]:
    headers = CIMultiDict(problem.headers)
    headers["Content-Type"] = JSON
    return headers


def _headers(status: status_pb2.Status) -> dict[str, str]:
    """Retry-After from RetryInfo, WWW-Authenticate for 401: what HTTP tools act on by themselves."""
    headers: dict[str, str] = {}
    if status.code == code_pb2.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = "Bearer"
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            headers["Retry-After"] = str(max(1, math.ceil(retry.retry_delay.ToTimedelta().total_seconds())))
    return headers
