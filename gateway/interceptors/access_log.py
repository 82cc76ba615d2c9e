"""One structured log line per RPC: method, status, duration, account; never a request body."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
from opentelemetry import trace

from gateway.errors import GatewayError
from gateway.interceptors.cancellation import cancelled_code
from gateway.interceptors.wrap import HandlerWrapper, Invoke
from gateway.tenants import current_tenant

log = logging.getLogger("gateway.access")


class AccessLogInterceptor(HandlerWrapper):
    async def around(
        self, invoke: Invoke, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            response = await invoke(request, context)
            return response
        except GatewayError as error:
            code = error.status_code
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
            tenant = current_tenant.get()
            span = trace.get_current_span()
            span_context = span.get_span_context()
            # What the chain found out (account of a recalled message, the message id) is on the span.
            facts = getattr(span, "attributes", None) or {}
            fields = {
                "trace_id": format(span_context.trace_id, "032x") if span_context.is_valid else "",
                "rpc": method,
                "status": code.name,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "tenant": tenant.name if tenant is not None else "",
                "account": facts.get("notify.account") or getattr(request, "account", "") or "",
                "message_id": facts.get("notify.message_id", ""),
            }
            log.info("rpc", extra=fields)


_CODES = {c.value[0]: c for c in grpc.StatusCode}
