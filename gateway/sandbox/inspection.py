"""The sandbox's own HTTP API under `/_sandbox/`: see what arrived, move time, inject faults.

For people poking at a running sandbox (curl) and for tests in other processes; in-process tests
can use `SandboxState` directly. Nothing here ever returns a robot's key, token or secret, nor an
app's secret or access token. The app and media routes live in `inspection_apps`.
(Named `inspection`, not `inspect`, so it never shadows the standard library module.)
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Final

from aiohttp import web

from gateway.sandbox import inspection_apps
from gateway.sandbox.channels import DINGTALK_ROBOT, WECOM_ROBOT
from gateway.sandbox.inspection_http import bad_request, is_number, json_answer, json_object, not_found
from gateway.sandbox.paths import PREFIX
from gateway.sandbox.state import SandboxState

_FAULT_FIELDS: Final = frozenset(
    {"channel", "robot", "http_status", "delay", "errcode", "errmsg", "drop", "times", "path", "sub_code"}
)


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The inspection routes, bound to `state`."""

    async def list_messages(request: web.Request) -> web.Response:
        channel = request.query.get("channel") or None
        robot = request.query.get("robot") or None
        only_delivered = request.query.get("delivered", "").lower() in {"1", "true", "yes"}
        entries = (state.delivered if only_delivered else state.received)(channel, robot)
        return json_answer([asdict(entry) for entry in entries])

    async def clear_messages(_: web.Request) -> web.Response:
        state.clear()
        return web.Response(status=204)

    async def list_robots(_: web.Request) -> web.Response:
        robots: list[dict[str, Any]] = [
            {"channel": WECOM_ROBOT, "name": robot.name} for robot in state.wecom_robots
        ]
        robots += [
            {
                "channel": DINGTALK_ROBOT,
                "name": robot.name,
                "signed": robot.secret is not None,
                "keywords": list(robot.keywords),
                "disabled": robot.disabled,
            }
            for robot in state.dingtalk_robots
        ]
        return json_answer(robots)

    async def read_clock(_: web.Request) -> web.Response:
        return json_answer({"now": state.clock.now()})

    async def advance_clock(request: web.Request) -> web.Response:
        body = await json_object(request)
        seconds = body.get("advance")
        if not is_number(seconds):
            raise bad_request('expected {"advance": <seconds>}')
        try:
            state.clock.advance(seconds)
        except ValueError as error:
            raise bad_request(str(error)) from None
        return json_answer({"now": state.clock.now()})

    async def inject_fault(request: web.Request) -> web.Response:
        body = await json_object(request)
        unknown = set(body) - _FAULT_FIELDS
        if unknown:
            raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
        channel, robot = body.get("channel"), body.get("robot")
        if not isinstance(channel, str) or not isinstance(robot, str):
            raise bad_request("channel and robot are required strings")
        times = body.get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool):
            raise bad_request("times must be an integer")
        for name in ("http_status", "errcode"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise bad_request(f"{name} must be an integer")
        delay = body.get("delay")
        if delay is not None and not is_number(delay):
            raise bad_request("delay must be a number of seconds")
        errmsg = body.get("errmsg")
        if errmsg is not None and not isinstance(errmsg, str):
            raise bad_request("errmsg must be a string")
        sub_code = body.get("sub_code")
        if sub_code is not None and not isinstance(sub_code, str):
            raise bad_request("sub_code must be a string")
        if body.get("drop") is not None and not isinstance(body.get("drop"), str):
            raise bad_request('drop must be "before" or "after"')
        path = body.get("path")
        if path is not None and not isinstance(path, str):
            raise bad_request("path must be a string")
        try:
            state.inject_fault(
                channel,
                robot,
                http_status=body.get("http_status"),
                delay=delay,
                errcode=body.get("errcode"),
                errmsg=errmsg,
                drop=body.get("drop"),
                times=times,
                path=path,
                sub_code=sub_code,
            )
        except KeyError as error:
            raise not_found(error.args[0]) from None
        except ValueError as error:
            raise bad_request(str(error)) from None
        return json_answer({"channel": channel, "robot": robot, "times": times}, status=201)

    async def clear_faults(_: web.Request) -> web.Response:
        state.clear_faults()
        return web.Response(status=204)

    return [
        web.get(f"{PREFIX}/messages", list_messages),
        web.delete(f"{PREFIX}/messages", clear_messages),
        web.get(f"{PREFIX}/robots", list_robots),
        web.get(f"{PREFIX}/clock", read_clock),
        web.post(f"{PREFIX}/clock", advance_clock),
        web.post(f"{PREFIX}/faults", inject_fault),
        web.delete(f"{PREFIX}/faults", clear_faults),
        *inspection_apps.routes(state),
    ]
