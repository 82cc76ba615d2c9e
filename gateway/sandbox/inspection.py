"""The sandbox's own HTTP API under `/_sandbox/`: see what arrived, move time, inject faults.

For people poking at a running sandbox (curl) and for tests in other processes; in-process tests
can use `SandboxState` directly. Nothing here ever returns a robot's key, token or secret.
(Named `inspection`, not `inspect`, so it never shadows the standard library module.)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Final, TypeGuard

from aiohttp import web

from gateway.sandbox.channels import DINGTALK_ROBOT, WECOM_ROBOT
from gateway.sandbox.state import SandboxState

PREFIX: Final = "/_sandbox"
_FAULT_FIELDS: Final = frozenset({"channel", "robot", "http_status", "delay", "errcode", "errmsg", "times"})


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The inspection routes, bound to `state`."""

    async def list_messages(request: web.Request) -> web.Response:
        channel = request.query.get("channel") or None
        robot = request.query.get("robot") or None
        only_delivered = request.query.get("delivered", "").lower() in {"1", "true", "yes"}
        entries = (state.delivered if only_delivered else state.received)(channel, robot)
        return _json([asdict(entry) for entry in entries])

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
        return _json(robots)

    async def read_clock(_: web.Request) -> web.Response:
        return _json({"now": state.clock.now()})

    async def advance_clock(request: web.Request) -> web.Response:
        body = await _json_object(request)
        seconds = body.get("advance")
        if not _is_number(seconds):
            raise _bad_request('expected {"advance": <seconds>}')
        try:
            state.clock.advance(seconds)
        except ValueError as error:
            raise _bad_request(str(error)) from None
        return _json({"now": state.clock.now()})

    async def inject_fault(request: web.Request) -> web.Response:
        body = await _json_object(request)
        unknown = set(body) - _FAULT_FIELDS
        if unknown:
            raise _bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
        channel, robot = body.get("channel"), body.get("robot")
        if not isinstance(channel, str) or not isinstance(robot, str):
            raise _bad_request("channel and robot are required strings")
        times = body.get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool):
            raise _bad_request("times must be an integer")
        for name in ("http_status", "errcode"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise _bad_request(f"{name} must be an integer")
        delay = body.get("delay")
        if delay is not None and not _is_number(delay):
            raise _bad_request("delay must be a number of seconds")
        errmsg = body.get("errmsg")
        if errmsg is not None and not isinstance(errmsg, str):
            raise _bad_request("errmsg must be a string")
        try:
            state.inject_fault(
                channel,
                robot,
                http_status=body.get("http_status"),
                delay=delay,
                errcode=body.get("errcode"),
                errmsg=errmsg,
                times=times,
            )
        except KeyError as error:
            raise web.HTTPNotFound(
                text=json.dumps({"error": error.args[0]}), content_type="application/json"
            ) from None
        except ValueError as error:
            raise _bad_request(str(error)) from None
        return _json({"channel": channel, "robot": robot, "times": times}, status=201)

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
    ]


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda value: json.dumps(value, ensure_ascii=False))


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad_request("the body must be JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bad_request(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")
