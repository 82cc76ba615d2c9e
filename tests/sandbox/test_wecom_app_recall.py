"""A WeCom application message can be recalled once, within 24 hours
(docs/vendors.md, WeCom application messages)."""

from __future__ import annotations

from typing import Any

from gateway.sandbox import SandboxState

from .harness import WECOM_AGENT_ID, WECOM_APP, AppClient

HELLO: dict[str, Any] = {
    "touser": "zhangsan",
    "agentid": WECOM_AGENT_ID,
    "msgtype": "text",
    "text": {"content": "hi"},
}


async def sent_msgid(apps: AppClient) -> str:
    reply = await apps.wecom_send(HELLO)
    assert reply.errcode == 0
    return str(reply.json["msgid"])


async def test_a_recall_withdraws_the_message(apps: AppClient, state: SandboxState) -> None:
    msgid = await sent_msgid(apps)

    reply = await apps.wecom_recall(msgid)

    assert reply.json == {"errcode": 0, "errmsg": "ok"}
    assert state.recalled(WECOM_APP) == [msgid]
    recall = state.received("wecom_app", WECOM_APP)[-1]
    assert (recall.msgtype, recall.body, recall.errcode) == ("recall", {"msgid": msgid}, 0)
    assert len(state.delivered("wecom_app")) == 1, "a recall is not a delivered message"


async def test_a_second_recall_is_refused(apps: AppClient, state: SandboxState) -> None:
    msgid = await sent_msgid(apps)
    await apps.wecom_recall(msgid)

    again = await apps.wecom_recall(msgid)

    assert again.errcode == 40035
    assert "msgid already recalled" in again.errmsg
    assert state.recalled(WECOM_APP) == [msgid]


async def test_a_recall_after_24_hours_is_refused(apps: AppClient, state: SandboxState) -> None:
    msgid = await sent_msgid(apps)
    state.clock.advance(24 * 3600 + 1)

    reply = await apps.wecom_recall(msgid)

    assert reply.errcode == 40035
    assert "recall time limit exceeded" in reply.errmsg
    assert state.recalled(WECOM_APP) == []


async def test_a_recall_just_inside_24_hours_works(apps: AppClient, state: SandboxState) -> None:
    msgid = await sent_msgid(apps)
    state.clock.advance(24 * 3600 - 5)

    assert (await apps.wecom_recall(msgid)).errcode == 0


async def test_an_unknown_msgid_is_refused(apps: AppClient, state: SandboxState) -> None:
    unknown = await apps.wecom_recall("no-such-msgid")
    missing = await apps.post("/cgi-bin/message/recall", await apps.wecom_token(), {})

    assert unknown.errcode == missing.errcode == 40035
    assert "invalid msgid" in unknown.errmsg
    assert state.recalled(WECOM_APP) == []


async def test_another_apps_msgid_cannot_be_recalled(apps: AppClient, state: SandboxState) -> None:
    msgid = await sent_msgid(apps)
    state.add_wecom_app("finance", "ww-finance", "finance-secret", 1000003)
    token = (await apps.wecom_gettoken("ww-finance", "finance-secret")).json["access_token"]

    assert (await apps.wecom_recall(msgid, token=token)).errcode == 40035


async def test_a_recall_with_an_expired_token_answers_42001(apps: AppClient, state: SandboxState) -> None:
    old = await apps.wecom_token()
    msgid = str((await apps.wecom_send(HELLO, token=old)).json["msgid"])
    state.expire_tokens(WECOM_APP)

    assert (await apps.wecom_recall(msgid, token=old)).errcode == 42001
    assert (await apps.wecom_recall(msgid)).errcode == 0
