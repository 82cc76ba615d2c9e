"""Emulates the DingTalk work-notification API (docs/vendors.md, DingTalk work notifications).

`GET /gettoken?appkey=&appsecret=` issues access tokens; every other call carries
`?access_token=`: the send (`asyncsend_v2`), `POST /media/upload?type=`, and the task calls in
`dingtalk_work_tasks`. A send answers a task_id: accepted, not delivered. Unknown users are
accepted and reported by getsendresult, as the vendor does.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from aiohttp import web

from gateway.sandbox import dingtalk_work_tasks
from gateway.sandbox.answers import Answer, Rejection
from gateway.sandbox.applications import DingtalkApp, SentTask
from gateway.sandbox.dingtalk_work_access import authorize, check_agent_id, serve_dingtalk_work
from gateway.sandbox.dingtalk_work_payload import check_dingtalk_work_message
from gateway.sandbox.endpoint import Call, Delivery
from gateway.sandbox.media_formats import DINGTALK_WORK_MEDIA
from gateway.sandbox.media_upload import receive_media
from gateway.sandbox.paths import DINGTALK_GETTOKEN, DINGTALK_WORK_SEND, DINGTALK_WORK_UPLOAD
from gateway.sandbox.recording import GETTOKEN, UPLOAD
from gateway.sandbox.state import SandboxState

USER_LIMIT: Final = 5000
"""docs/vendors.md, DingTalk work notifications: up to 5000 users per call."""


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The work-notification API's HTTP routes, bound to `state`."""
    book = state.dingtalk_apps

    async def gettoken(request: web.Request) -> web.Response:
        app_key = request.query.get("appkey", "")
        secret = request.query.get("appsecret", "")

        def keyed() -> DingtalkApp | None:
            return next((app for app in book if app.app_key == app_key), None)

        async def handle(_: Call) -> Answer:
            app = keyed()
            if app is None or app.app_secret != secret:
                raise Rejection(40096, "invalid appkey or appsecret")
            now = state.clock.now()
            token = book.tokens.issue(app.name, now, state.token_lifetime)
            return Answer(0, "ok", fields={"access_token": token.value, "expires_in": token.expires_in(now)})

        # Recorded under the app the appkey names (even with a wrong secret), with an empty body:
        # the query holds the secret.
        app = keyed()
        return await serve_dingtalk_work(request, state, Call(GETTOKEN), handle, app.name if app else None)

    async def send(request: web.Request) -> web.Response:
        delivery = Delivery.parse(await request.read())

        async def handle(_: Call) -> Answer:
            app = authorize(state, request)
            body = delivery.body
            if body is None:
                raise Rejection(40035, "缺少参数 json body")
            check_agent_id(body, app)
            to_all = body.get("to_all_user", False)
            if not isinstance(to_all, bool):
                raise Rejection(40035, "参数错误 to_all_user: must be true or false")
            users = _id_list(body, "userid_list")
            departments = _id_list(body, "dept_id_list")
            if not to_all and not (users or departments):
                raise Rejection(40035, "缺少参数 userid_list or dept_id_list")
            if len(users) > USER_LIMIT:
                raise Rejection(40035, f"参数错误 userid_list: at most {USER_LIMIT} users")
            now = state.clock.now()
            check_dingtalk_work_message(body.get("msg"), lambda media_id: app.media.usable(media_id, now))
            # Recipients a minute, counted as the users named (the whole directory for
            # to_all_user); department members are not known to the sandbox.
            reached = sorted(app.users) if to_all else [user for user in users if user in app.users]
            if not app.rate.try_acquire(now, len(app.users) if to_all else len(users)):
                raise Rejection(90018, f"too many recipients: over {app.rate.limit} a minute for this app")
            task_id = _new_task_id(app)
            app.tasks[task_id] = SentTask(
                at=now,
                users=tuple(reached),
                invalid_users=() if to_all else tuple(u for u in users if u not in app.users),
                invalid_departments=tuple(d for d in departments if d not in app.departments),
            )
            return Answer(0, "ok", fields={"task_id": task_id, "request_id": secrets.token_hex(12)})

        msg = delivery.body.get("msg") if delivery.body is not None else None
        msgtype = msg.get("msgtype") if isinstance(msg, dict) else None
        call = Call(msgtype if isinstance(msgtype, str) else "", delivery.body or {})
        return await serve_dingtalk_work(request, state, call, handle)

    async def upload(request: web.Request) -> web.Response:
        async def handle(call: Call) -> Answer:
            app = authorize(state, request)
            now = state.clock.now()
            record = await receive_media(request, call, DINGTALK_WORK_MEDIA, now, state.media_content.keep)
            media_id = app.media.add(record)
            # created_at in milliseconds, as DingTalk's timestamps are (the doc calls the shape uncertain).
            fields = {"type": record.type, "media_id": media_id, "created_at": int(now * 1000)}
            return Answer(0, "ok", fields=fields)

        call = Call(UPLOAD, {"type": request.query.get("type", "")})
        return await serve_dingtalk_work(request, state, call, handle)

    return [
        web.get(DINGTALK_GETTOKEN, gettoken),
        web.post(DINGTALK_WORK_SEND, send),
        web.post(DINGTALK_WORK_UPLOAD, upload),
        *dingtalk_work_tasks.routes(state),
    ]


def _id_list(body: dict[str, Any], name: str) -> list[str]:
    """The distinct ids of a comma-joined field, in the order given."""
    value = body.get(name)
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise Rejection(40035, f"参数错误 {name}: must be ids joined with commas")
    return list(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))


def _new_task_id(app: DingtalkApp) -> int:
    # Real task ids are large integers (e.g. 256271667526); random ones cannot be guessed by
    # a test that should have read the answer.
    while True:
        task_id = 10**11 + secrets.randbelow(9 * 10**11)
        if task_id not in app.tasks:
            return task_id
