"""One structured log line per RPC: method, status, duration, account; never a request body.

The line's level says whose move it is, by the status's class (``LEVELS``): ``info`` for OK,
``warning`` when the caller has something to change, ``error`` when the gateway, its store or a
vendor failed. It carries the ErrorInfo ``reason`` of a failure, the vendor's errcode when a vendor
refused, and the caller's address (``peer``, with its port) to tell callers apart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

import grpc
from opentelemetry import trace

from gateway.errors import GatewayError, VendorError
from gateway.interceptors.cancellation import cancelled_code
from gateway.interceptors.tracing import call_failure
from gateway.interceptors.wrap import HandlerWrapper, Invoke
from gateway.telemetry import call_facts
from gateway.tenants import current_tenant

log = logging.getLogger("gateway.access")

_S = grpc.StatusCode
#: The access log's level per status. warning: the caller's request, rights, quota or timing needs
#: changing (CANCELLED: the caller left). ABORTED too: here it only means "the same idempotency key
#: is still being delivered, retry later", a caller's concurrent retry, not a fault of ours.
#: error: something on our side (the gateway, its store, a vendor) failed, or the caller's deadline
#: passed while we worked; UNIMPLEMENTED is a method this build does not serve.
LEVELS: dict[grpc.StatusCode, int] = {
    _S.OK: logging.INFO,
    **dict.fromkeys(
        (
            _S.INVALID_ARGUMENT,
            _S.NOT_FOUND,
            _S.ALREADY_EXISTS,
            _S.PERMISSION_DENIED,
            _S.UNAUTHENTICATED,
            _S.RESOURCE_EXHAUSTED,
            _S.FAILED_PRECONDITION,
            _S.OUT_OF_RANGE,
            _S.CANCELLED,
            _S.ABORTED,
        ),
        logging.WARNING,
    ),
    **dict.fromkeys(
        (_S.INTERNAL, _S.UNKNOWN, _S.UNAVAILABLE, _S.DEADLINE_EXCEEDED, _S.DATA_LOSS, _S.UNIMPLEMENTED),
        logging.ERROR,
    ),
}


class AccessLogInterceptor(HandlerWrapper):
    async def around(
        self, invoke: Invoke, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        failure = call_failure.set(None)
        reason, errcode = "", None
        try:
            response = await invoke(request, context)
            return response
        except GatewayError as error:  # raised past the error interceptor (none today): still told
            code, reason = error.status_code, error.reason
            errcode = error.errcode if isinstance(error, VendorError) else None
            raise
        except asyncio.CancelledError:
            code = cancelled_code(context)
            raise
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            if isinstance(code, int):
                code = _CODES.get(code, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            found = call_failure.get()
            call_failure.reset(failure)
            if found is not None and code is not grpc.StatusCode.OK:
                reason = str(found.get("notify.error.reason", reason))
                vendor = found.get("notify.vendor.errcode")
                errcode = vendor if isinstance(vendor, int) else errcode
            level = LEVELS.get(code, logging.ERROR)
            if log.isEnabledFor(level):  # else the line is not built: nothing would write it
                _write(level, method, code, started, reason, errcode, request, context)


def _write(
    level: int,
    method: str,
    code: grpc.StatusCode,
    started: float,
    reason: str,
    errcode: int | None,
    request: Any,
    context: grpc.aio.ServicerContext,
) -> None:
    """The line itself, apart so that a level that is off costs no fields (span, peer, tenant)."""
    tenant = current_tenant.get()
    span = trace.get_current_span()
    span_context = span.get_span_context()
    # What the chain found out (account of a recalled message, the message id): the call's facts,
    # kept whether or not the call is sampled; the span's own outside the tracing interceptor.
    facts = call_facts.get()
    if facts is None:
        facts = getattr(span, "attributes", None) or {}
    fields: dict[str, Any] = {
        "trace_id": format(span_context.trace_id, "032x") if span_context.is_valid else "",
        "rpc": method,
        "status": code.name,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "tenant": tenant.name if tenant is not None else "",
        "account": facts.get("notify.account") or getattr(request, "account", "") or "",
        "message_id": facts.get("notify.message_id", ""),
        "peer": context.peer() or "",
    }
    if reason:
        fields["reason"] = reason
    if errcode is not None:
        fields["vendor_errcode"] = errcode
    # Written in the event loop's next turn: grpc sends the answer first (as the server span's end,
    # gateway/interceptors/tracing.py), and the fields above are taken now, duration included.
    asyncio.get_running_loop().call_soon(functools.partial(log.log, level, "rpc", extra=fields))


_CODES = {c.value[0]: c for c in grpc.StatusCode}
