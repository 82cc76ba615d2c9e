"""The `/_sandbox/` routes about apps and media: list them, break tokens, see recalls and uploads.

For people and out-of-process tests what `SandboxState.gettoken_calls`, `expire_tokens`,
`revoke_token`, `recalled` and `media` are in-process. Answers name apps and agent ids, never
a secret or a token; media records never carry content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from gateway.sandbox.channels import DINGTALK_WORK, WECOM_APP
from gateway.sandbox.inspection_http import bad_request, json_answer, json_object, not_found
from gateway.sandbox.media import MediaRecord
from gateway.sandbox.paths import PREFIX
from gateway.sandbox.state import SandboxState


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The app and media inspection routes, bound to `state`."""

    def for_app(name: str, action: Callable[[], Any]) -> Any:
        """Run `action`; an unknown app name is HTTP 404 instead of a KeyError."""
        try:
            return action()
        except KeyError as error:
            raise not_found(error.args[0]) from None

    async def list_apps(_: web.Request) -> web.Response:
        apps = [
            {"channel": WECOM_APP, "name": app.name, "agent_id": app.agent_id} for app in state.wecom_apps
        ]
        apps += [
            {"channel": DINGTALK_WORK, "name": app.name, "agent_id": app.agent_id}
            for app in state.dingtalk_apps
        ]
        return json_answer(apps)

    async def gettoken_calls(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return json_answer({"calls": for_app(name, lambda: state.gettoken_calls(name))})

    async def expire_tokens(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        for_app(name, lambda: state.expire_tokens(name))
        return web.Response(status=204)

    async def revoke_token(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await json_object(request) if request.body_exists else {}
        legacy = body.get("legacy", False)
        if not isinstance(legacy, bool):
            raise bad_request("legacy must be true or false")
        for_app(name, lambda: state.revoke_token(name, legacy=legacy))
        return web.Response(status=204)

    async def recalled(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return json_answer({"recalled": for_app(name, lambda: state.recalled(name))})

    async def list_media(request: web.Request) -> web.Response:
        owner = request.query.get("app") or None
        if owner is not None:
            shelf = for_app(owner, lambda: state.media(owner))
            return json_answer([_media_entry(owner, media_id, record) for media_id, record in shelf.items()])
        owners = [app.name for app in state.wecom_apps]
        owners += [app.name for app in state.dingtalk_apps]
        owners += [robot.name for robot in state.wecom_robots]
        return json_answer(
            [
                _media_entry(name, media_id, record)
                for name in owners
                for media_id, record in state.media(name).items()
            ]
        )

    apps = f"{PREFIX}/apps"
    return [
        web.get(apps, list_apps),
        web.get(f"{apps}/{{name}}/gettoken-calls", gettoken_calls),
        web.post(f"{apps}/{{name}}/expire-tokens", expire_tokens),
        web.post(f"{apps}/{{name}}/revoke-token", revoke_token),
        web.get(f"{apps}/{{name}}/recalled", recalled),
        web.get(f"{PREFIX}/media", list_media),
    ]


def _media_entry(owner: str, media_id: str, record: MediaRecord) -> dict[str, Any]:
    return {"owner": owner, "media_id": media_id, **asdict(record)}
