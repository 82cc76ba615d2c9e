"""What every DingTalk work-notification call but gettoken shares: token, agent_id, recording.

Token answers (docs/vendors.md, DingTalk work notifications and Access tokens): a missing,
unknown or revoked token answers errcode 88 with sub_code "40014" (the vendor's newer form); a
token revoked with `legacy=True` answers plain 40014; an expired one 42001.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from gateway.sandbox.access_tokens import TokenState
from gateway.sandbox.answers import Rejection
from gateway.sandbox.applications import DingtalkApp
from gateway.sandbox.channels import DINGTALK_WORK
from gateway.sandbox.dingtalk_errmsg import dingtalk_errmsg
from gateway.sandbox.endpoint import Call, Handle, serve_call
from gateway.sandbox.state import SandboxState

_INVALID_TOKEN: Final = "不合法的access_token"


def authorize(state: SandboxState, request: web.Request) -> DingtalkApp:
    """The app whose valid token the request carries, else the vendor's token errcode."""
    token = state.dingtalk_apps.tokens.find(request.query.get("access_token", ""))
    now = state.clock.now()
    if token is None:
        raise _invalid_token()
    if token.state(now) is TokenState.REVOKED:
        raise Rejection(40014, _INVALID_TOKEN) if token.legacy else _invalid_token()
    if token.state(now) is TokenState.EXPIRED:
        raise Rejection(42001, "access_token expired")
    return state.dingtalk_apps.get(token.owner)


def check_agent_id(body: Mapping[str, Any], app: DingtalkApp) -> None:
    """41011 when agent_id is missing, 40056 when it is not this app's."""
    agent_id = body.get("agent_id")
    if agent_id is None or agent_id == "":
        raise Rejection(41011, "缺少参数 agent_id")
    # A number, or a string of digits (form-encoded callers send strings).
    if (
        isinstance(agent_id, bool)
        or not isinstance(agent_id, int | str)
        or str(agent_id) != str(app.agent_id)
    ):
        raise Rejection(40056, "不合法的agent_id")


async def serve_dingtalk_work(
    request: web.Request, state: SandboxState, call: Call, handle: Handle, name: str | None = None
) -> web.Response:
    """`serve_call` for this channel; by default recorded under the app the token belongs to."""
    if name is None:
        name = state.dingtalk_apps.tokens.owner_of(request.query.get("access_token", ""))
    return await serve_call(
        request,
        state=state,
        channel=DINGTALK_WORK,
        name=name,
        call=call,
        handle=handle,
        style=dingtalk_errmsg,
    )


def _invalid_token() -> Rejection:
    return Rejection(
        88,
        f"ding talk error[subcode=40014,submsg={_INVALID_TOKEN}]",
        fields={"sub_code": "40014", "sub_msg": _INVALID_TOKEN},
    )
