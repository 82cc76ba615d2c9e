"""Authenticates every RPC but health and reflection: ``authorization: Bearer <api key>`` -> tenant."""

from __future__ import annotations

from typing import Any

import grpc

from gateway.errors import Unauthenticated
from gateway.interceptors.wrap import HandlerWrapper, Invoke
from gateway.tenants import Tenant, Tenants, current_tenant

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
        current_tenant.set(authenticate(self._tenants, header))
        return await invoke(request, context)


def authenticate(tenants: Tenants, header: str) -> Tenant:
    """The tenant an ``authorization`` value (``Bearer <api key>``) names, or Unauthenticated.

    Shared with the HTTP face, which checks the key before it reads or transcodes a body, so a
    caller without a valid key learns that first (401), as over gRPC, whatever else is wrong.
    """
    api_key = header[len(_SCHEME) :].strip() if header[: len(_SCHEME)].lower() == _SCHEME else ""
    if not api_key:
        raise Unauthenticated(
            "missing credentials: send metadata 'authorization: Bearer <api key>'",
            reason="API_KEY_MISSING",
        )
    tenant = tenants.authenticate(api_key)
    if tenant is None:
        raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
    return tenant
