"""A DingTalk work notification can be recalled once, within 24 hours
(docs/vendors.md, DingTalk work notifications)."""

from __future__ import annotations

from gateway.sandbox import SandboxState

from .harness import DING_AGENT_ID, DING_APP, AppClient


async def sent_task(apps: AppClient) -> int:
    body = {
        "agent_id": DING_AGENT_ID,
        "userid_list": "user01",
        "msg": {"msgtype": "text", "text": {"content": "hi"}},
    }
    reply = await apps.ding_send(body)
    assert reply.errcode == 0
    return int(reply.json["task_id"])


async def recall(apps: AppClient, task_id: object) -> int:
    reply = await apps.ding_call("recall", {"agent_id": DING_AGENT_ID, "msg_task_id": task_id})
    return reply.errcode


async def test_a_recall_withdraws_the_task(apps: AppClient, state: SandboxState) -> None:
    task_id = await sent_task(apps)

    assert await recall(apps, task_id) == 0
    assert state.recalled(DING_APP) == [str(task_id)]
    entry = state.received("dingtalk_work")[-1]
    assert (entry.msgtype, entry.body["msg_task_id"]) == ("recall", task_id)


async def test_an_unknown_task_cannot_be_recalled(apps: AppClient, state: SandboxState) -> None:
    assert await recall(apps, 123) == 40035
    assert await recall(apps, None) == 40035
    assert state.recalled(DING_APP) == []


async def test_a_second_recall_is_refused(apps: AppClient, state: SandboxState) -> None:
    task_id = await sent_task(apps)
    await recall(apps, task_id)

    assert await recall(apps, task_id) == 40035
    assert state.recalled(DING_APP) == [str(task_id)]


async def test_a_recall_after_24_hours_is_refused(apps: AppClient, state: SandboxState) -> None:
    task_id = await sent_task(apps)
    state.clock.advance(24 * 3600 + 1)

    reply = await apps.ding_call("recall", {"agent_id": DING_AGENT_ID, "msg_task_id": task_id})

    assert reply.json == {"errcode": 40035, "errmsg": "recall time limit exceeded"}
    assert state.recalled(DING_APP) == []
