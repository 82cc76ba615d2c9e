"""Authenticates every RPC but health and reflection: ``authorization: Bearer <api key>`` -> tenant."""

from __future__ import annotations

from typing import Any

import grpc

from gateway.errors import Unauthenticated
from gateway.interceptors.wrap import HandlerWrapper, Invoke
from gateway.tenants import Tenants, current_tenant

_SCHEME = "bearer "


class AuthInterceptor(HandlerWrapper):
    def __init__(self, tenants: Tenants) -> None:
        super().__init__()
        self._tenants = tenants

    async def around(
        self, invoke: Invoke, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        if not self._tenants.enabled:
            return await invoke(request, context)
        header = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                header = value if isinstance(value, str) else value.decode()
                break
        api_key = header[len(_SCHEME) :].strip() if header[: len(_SCHEME)].lower() == _SCHEME else ""
        if not api_key:
            raise Unauthenticated(
                "missing credentials: send metadata 'authorization: Bearer <api key>'",
                reason="API_KEY_MISSING",
            )
        tenant = self._tenants.authenticate(api_key)
        if tenant is None:
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        current_tenant.set(tenant)
        return await invoke(request, context)
