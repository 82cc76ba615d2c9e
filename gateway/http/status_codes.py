"""The HTTP status for each gRPC code, as grpc-gateway maps them (runtime/errors.go HTTPStatusFromCode).

Callers who know grpc-gateway, Envoy's transcoder or Google's APIs read our codes the same way;
FAILED_PRECONDITION is 400 there too (deliberately not 412, which is about HTTP conditionals).
"""

from __future__ import annotations

from http import HTTPStatus

import grpc

_HTTP = {
    grpc.StatusCode.OK: HTTPStatus.OK,
    grpc.StatusCode.CANCELLED: 499,  # nginx's "client closed request"; no HTTPStatus member
    grpc.StatusCode.UNKNOWN: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: HTTPStatus.INTERNAL_SERVER_ERROR,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def http_status(code: grpc.StatusCode | int) -> int:
    """The HTTP status for a gRPC code (a member or its number); 500 for a number gRPC does not define."""
    if isinstance(code, int):
        found = _BY_NUMBER.get(code)
        if found is None:
            return int(HTTPStatus.INTERNAL_SERVER_ERROR)
        code = found
    return int(_HTTP.get(code, HTTPStatus.INTERNAL_SERVER_ERROR))
