"""A tenant may use only the accounts its config lists: anything else is PERMISSION_DENIED."""

from __future__ import annotations

from typing import Any

from gateway.chain.chain import Next
from gateway.chain.context import CallContext
from gateway.errors import PermissionDenied
from gateway.tenants import current_tenant


async def authorize_account(ctx: CallContext[Any], call_next: Next) -> Any:
    tenant = current_tenant.get()
    if tenant is not None and not tenant.may_use(ctx.account_id):
        raise PermissionDenied(
            f"tenant {tenant.name!r} may not use account {ctx.account_id!r}",
            reason="ACCOUNT_NOT_ALLOWED",
            metadata={"tenant": tenant.name, "account": ctx.account_id},
        )
    return await call_next()
