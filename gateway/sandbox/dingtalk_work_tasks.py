"""A DingTalk work-notification task after the send: progress, result and recall
(docs/vendors.md, DingTalk work notifications).

The sandbox delivers at once, so progress is always done (100 %, status 2) and the result lists
every valid recipient as unread. Where the doc gives no code, recall answers 40035 with an
errmsg saying why: unknown task, "task already recalled", "recall time limit exceeded" (24 h).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.sandbox.answers import Answer, Rejection
from gateway.sandbox.applications import RECALL_WINDOW, DingtalkApp, SentTask
from gateway.sandbox.dingtalk_work_access import authorize, check_agent_id, serve_dingtalk_work
from gateway.sandbox.endpoint import Call, Delivery
from gateway.sandbox.paths import DINGTALK_WORK_PROGRESS, DINGTALK_WORK_RECALL, DINGTALK_WORK_RESULT
from gateway.sandbox.recording import RECALL, SEND_PROGRESS, SEND_RESULT
from gateway.sandbox.state import SandboxState

DONE = 2
"""progress.status: 0 not started, 1 processing, 2 done."""

_TaskAnswer = Callable[[DingtalkApp, int, SentTask], Answer]
"""What one task endpoint answers for a found task (or the Rejection it raises)."""


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The task routes, bound to `state`."""

    async def serve_task_call(
        request: web.Request, msgtype: str, id_field: str, answer: _TaskAnswer
    ) -> web.Response:
        delivery = Delivery.parse(await request.read())

        async def handle(_: Call) -> Answer:
            app = authorize(state, request)
            body = delivery.body
            if body is None:
                raise Rejection(40035, "缺少参数 json body")
            check_agent_id(body, app)
            task_id = _task_id(body.get(id_field), id_field)
            task = app.tasks.get(task_id)
            if task is None:
                raise Rejection(40035, f"不合法的{id_field}: no such task")
            return answer(app, task_id, task)

        call = Call(msgtype, delivery.body if delivery.body is not None else {})
        return await serve_dingtalk_work(request, state, call, handle)

    def progress(_: DingtalkApp, __: int, ___: SentTask) -> Answer:
        return _ok({"progress": {"progress_in_percent": 100, "status": DONE}})

    def result(_: DingtalkApp, __: int, task: SentTask) -> Answer:
        send_result = {
            "invalid_user_id_list": list(task.invalid_users),
            "forbidden_user_id_list": [],
            "failed_user_id_list": [],
            "read_user_id_list": [],
            "unread_user_id_list": list(task.users),
            "invalid_dept_id_list": list(task.invalid_departments),
            "forbidden_list": [],
        }
        return _ok({"send_result": send_result})

    def recall(app: DingtalkApp, task_id: int, task: SentTask) -> Answer:
        if task.recalled:
            raise Rejection(40035, "task already recalled")
        if state.clock.now() - task.at > RECALL_WINDOW:
            raise Rejection(40035, "recall time limit exceeded")
        task.recalled = True
        app.recalled.append(str(task_id))
        return _ok({})

    async def get_progress(request: web.Request) -> web.Response:
        return await serve_task_call(request, SEND_PROGRESS, "task_id", progress)

    async def get_result(request: web.Request) -> web.Response:
        return await serve_task_call(request, SEND_RESULT, "task_id", result)

    async def recall_task(request: web.Request) -> web.Response:
        return await serve_task_call(request, RECALL, "msg_task_id", recall)

    return [
        web.post(DINGTALK_WORK_PROGRESS, get_progress),
        web.post(DINGTALK_WORK_RESULT, get_result),
        web.post(DINGTALK_WORK_RECALL, recall_task),
    ]


def _task_id(value: object, field: str) -> int:
    if value is None or value == "":
        raise Rejection(40035, f"缺少参数 {field}")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise Rejection(40035, f"参数错误 {field}: must be a number")


def _ok(fields: dict[str, Any]) -> Answer:
    return Answer(0, "ok", fields={**fields, "request_id": secrets.token_hex(12)})
