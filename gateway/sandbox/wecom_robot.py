"""Emulates the WeCom group robot webhook (vendor-apis.md B).

`POST /cgi-bin/webhook/send?key=KEY` with a JSON message. The key is the only credential, so an
unknown or removed key answers 93000 and nothing else is checked.
"""

from __future__ import annotations

from aiohttp import web

from gateway.sandbox.answers import OK, Answer, Rejection
from gateway.sandbox.channels import WECOM_ROBOT
from gateway.sandbox.robot_endpoint import Delivery, serve_robot_call
from gateway.sandbox.state import SandboxState
from gateway.sandbox.wecom_errmsg import wecom_errmsg
from gateway.sandbox.wecom_robot_payload import check_wecom_robot_message

SEND_PATH = "/cgi-bin/webhook/send"


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The robot's HTTP routes, bound to `state`."""

    async def send(request: web.Request) -> web.Response:
        key = request.query.get("key", "")

        def decide(delivery: Delivery) -> Answer:
            # Looked up here, not before the body is read, so a robot removed while an
            # injected delay runs is already gone when the request is handled.
            robot = state.wecom_robots.find(key)
            if robot is None:
                raise Rejection(93000, "invalid webhook url")
            if delivery.body is None:
                raise Rejection(47001, "data format error: the body must be a UTF-8 JSON object")
            now = state.clock.now()
            check_wecom_robot_message(delivery.body, lambda media_id: robot.has_media(media_id, now))
            # Checked last so that only accepted messages use up the robot's 20 a minute.
            if not robot.rate.try_acquire(now):
                raise Rejection(45009, "api freq out of limit")
            return OK

        return await serve_robot_call(
            request,
            state=state,
            channel=WECOM_ROBOT,
            robot=state.wecom_robots.name_for(key),
            decide=decide,
            style=wecom_errmsg,
        )

    return [web.post(SEND_PATH, send)]
