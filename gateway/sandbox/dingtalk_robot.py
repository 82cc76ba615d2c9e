"""Emulates the DingTalk custom group robot webhook (docs/vendors.md, DingTalk group robot).

`POST /robot/send?access_token=TOKEN[&timestamp=MS&sign=SIG]` with a JSON message. The checks
run in the order a caller can fix them: credential, robot state, security (signature), throttle,
size, payload, keywords, idempotency, rate.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.sandbox.answers import OK, Answer, Rejection
from gateway.sandbox.channels import DINGTALK_ROBOT
from gateway.sandbox.dingtalk_errmsg import dingtalk_errmsg
from gateway.sandbox.dingtalk_robot_payload import BODY_MAX_BYTES, check_dingtalk_robot_message
from gateway.sandbox.dingtalk_security import check_keywords, check_signature
from gateway.sandbox.endpoint import Delivery
from gateway.sandbox.paths import DINGTALK_ROBOT_SEND
from gateway.sandbox.robot_endpoint import serve_robot_call
from gateway.sandbox.state import SandboxState

SEND_PATH: Final = DINGTALK_ROBOT_SEND
THROTTLE_SECONDS: Final = 600.0
"""Over 20 messages a minute, the vendor refuses every send from the robot for 10 minutes."""
_TOO_FAST: Final = "send too fast, exceed 20 times per minute"


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The robot's HTTP routes, bound to `state`."""

    async def send(request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")

        def decide(delivery: Delivery) -> Answer:
            robot = state.dingtalk_robots.find(token)
            if robot is None:
                raise Rejection(300001, "token is not exist")
            if robot.disabled:
                raise Rejection(400102, "robot disabled")
            now = state.clock.now()
            if robot.secret is not None:
                check_signature(robot.secret, request.query.get("timestamp"), request.query.get("sign"), now)
            if robot.throttled_until is not None and now < robot.throttled_until:
                raise Rejection(130101, _TOO_FAST)
            if len(delivery.raw) > BODY_MAX_BYTES:
                raise Rejection(460101, "message too long")
            if delivery.body is None:
                raise Rejection(40035, "缺少参数 json")
            message = check_dingtalk_robot_message(delivery.body)
            check_keywords(robot.keywords, message)
            msg_uuid = delivery.body.get("msgUuid")
            # msgUuid is the vendor's idempotency key: a retry of an accepted message succeeds
            # without a second delivery, and without using up the rate window.
            if isinstance(msg_uuid, str) and msg_uuid in robot.msg_uuids:
                return Answer(0, "ok", duplicate=True)
            if not robot.rate.try_acquire(now):
                robot.throttled_until = now + THROTTLE_SECONDS
                raise Rejection(130101, _TOO_FAST)
            if isinstance(msg_uuid, str):
                robot.msg_uuids.add(msg_uuid)
            return OK

        return await serve_robot_call(
            request,
            state=state,
            channel=DINGTALK_ROBOT,
            robot=state.dingtalk_robots.name_for(token),
            decide=decide,
            style=dingtalk_errmsg,
        )

    return [web.post(SEND_PATH, send)]
