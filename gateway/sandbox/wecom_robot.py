"""Emulates the WeCom group robot webhook (docs/vendors.md, WeCom group robot).

`POST /cgi-bin/webhook/send?key=KEY` with a JSON message, and
`POST /cgi-bin/webhook/upload_media?key=KEY&type=file|voice` with a multipart part `media`. The
key is the only credential, so an unknown or removed key answers 93000 and nothing else is
checked.
"""

from __future__ import annotations

from aiohttp import web

from gateway.sandbox.answers import OK, Answer, Rejection
from gateway.sandbox.channels import WECOM_ROBOT
from gateway.sandbox.endpoint import Call, Delivery, serve_call
from gateway.sandbox.media_formats import WECOM_ROBOT_MEDIA
from gateway.sandbox.media_upload import receive_media
from gateway.sandbox.paths import WECOM_ROBOT_SEND, WECOM_ROBOT_UPLOAD
from gateway.sandbox.recording import UPLOAD
from gateway.sandbox.robot_endpoint import serve_robot_call
from gateway.sandbox.robots import WecomRobot
from gateway.sandbox.state import SandboxState
from gateway.sandbox.wecom_errmsg import wecom_errmsg
from gateway.sandbox.wecom_robot_payload import check_wecom_robot_message

SEND_PATH = WECOM_ROBOT_SEND
UPLOAD_PATH = WECOM_ROBOT_UPLOAD


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The robot's HTTP routes, bound to `state`."""

    def find_robot(key: str) -> WecomRobot:
        # Looked up when the request is handled, not when it arrives, so a robot removed
        # while an injected delay runs is already gone.
        robot = state.wecom_robots.find(key)
        if robot is None:
            raise Rejection(93000, "invalid webhook url")
        return robot

    async def send(request: web.Request) -> web.Response:
        key = request.query.get("key", "")

        def decide(delivery: Delivery) -> Answer:
            robot = find_robot(key)
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

    async def upload(request: web.Request) -> web.Response:
        key = request.query.get("key", "")

        async def handle(call: Call) -> Answer:
            robot = find_robot(key)
            now = state.clock.now()
            record = await receive_media(request, call, WECOM_ROBOT_MEDIA, now, state.media_content.keep)
            # The media_id joins the robot's own shelf: usable only by this robot, for 3 days.
            media_id = robot.media.add(record)
            return Answer(
                0,
                "ok",
                fields={"type": record.type, "media_id": media_id, "created_at": str(int(now))},
            )

        return await serve_call(
            request,
            state=state,
            channel=WECOM_ROBOT,
            name=state.wecom_robots.name_for(key),
            call=Call(UPLOAD, {"type": request.query.get("type", "")}),
            handle=handle,
            style=wecom_errmsg,
        )

    return [web.post(SEND_PATH, send), web.post(UPLOAD_PATH, upload)]
