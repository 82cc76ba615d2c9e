"""One structured log line per RPC: method, status, duration, account; never a request body."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from gateway.errors import GatewayError
from gateway.interceptors.wrap import HandlerWrapper, Invoke

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
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            if isinstance(code, int):
                code = _CODES.get(code, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            fields = {
                "rpc": method,
                "status": code.name,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "account": getattr(request, "account", "") or "",
            }
            log.info("rpc", extra=fields)


_CODES = {c.value[0]: c for c in grpc.StatusCode}
