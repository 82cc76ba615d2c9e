"""The DingTalk work-notification send and its task calls answer like the vendor
(docs/vendors.md, DingTalk work notifications)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import AMR, DING_AGENT_ID, DING_APP, PNG, AppClient


def work(msgtype: str, content: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    body = {"agent_id": DING_AGENT_ID, "userid_list": "user01,user02", "to_all_user": False}
    return {**body, "msg": {"msgtype": msgtype, msgtype: content}, **envelope}


def text(content: str = "hi", **envelope: Any) -> dict[str, Any]:
    return work("text", {"content": content}, **envelope)


async def upload(apps: AppClient, media_type: str, content: bytes, filename: str) -> str:
    reply = await apps.ding_upload(media_type, content, filename)
    assert reply.errcode == 0, reply.text
    return str(reply.json["media_id"])


OA: dict[str, Any] = {
    "message_url": "https://example.com/oa",
    "head": {"bgcolor": "FFBBBBBB", "text": "审批"},
    "body": {"title": "请假", "form": [{"key": "天数", "value": "2"}]},
}

ACCEPTED: dict[str, dict[str, Any]] = {
    "text": text("今天的部署已完成"),
    "link": work(
        "link",
        {"messageUrl": "https://e/1", "picUrl": "https://e/p.png", "title": "发布", "text": "v1.2"},
    ),
    "markdown": work("markdown", {"title": "周报", "text": "# 标题\n- 一"}),
    "oa": work("oa", OA),
    "single action_card": work(
        "action_card",
        {"title": "t", "markdown": "m", "single_title": "查看", "single_url": "https://e"},
    ),
    "multi action_card": work(
        "action_card",
        {
            "title": "t",
            "markdown": "m",
            "btn_orientation": "1",
            "btn_json_list": [
                {"title": "同意", "action_url": "https://e/y"},
                {"title": "拒绝", "action_url": "https://e/n"},
            ],
        },
    ),
    "to everyone": text(to_all_user=True, userid_list=""),
    "to departments only": text(userid_list="", dept_id_list="1,2"),
    "agent_id as a string": text(agent_id=str(DING_AGENT_ID)),
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_each_message_type_is_accepted_with_a_task_id(
    apps: AppClient, state: SandboxState, body: dict[str, Any]
) -> None:
    reply = await apps.ding_send(body)

    assert reply.errcode == 0, reply.text
    assert reply.json["errmsg"] == "ok"
    assert isinstance(reply.json["task_id"], int)
    assert isinstance(reply.json["request_id"], str)
    [entry] = state.delivered("dingtalk_work", DING_APP)
    assert entry.body == body
    assert entry.msgtype == body["msg"]["msgtype"]


@pytest.mark.parametrize(
    ("msgtype", "content", "filename"),
    [("image", PNG, "chart.png"), ("file", b"%PDF-1.7 report", "report.pdf"), ("voice", AMR, "memo.amr")],
)
async def test_media_messages_take_a_media_id_this_app_uploaded(
    apps: AppClient, msgtype: str, content: bytes, filename: str
) -> None:
    media_id = await upload(apps, msgtype, content, filename)
    part: dict[str, Any] = {"media_id": media_id}
    if msgtype == "voice":
        part["duration"] = "10"

    assert (await apps.ding_send(work(msgtype, part))).errcode == 0
    assert (await apps.ding_send(work(msgtype, {**part, "media_id": "@never-uploaded"}))).errcode == 40007


@pytest.mark.parametrize(
    ("duration", "errcode"), [(59, 0), ("1", 0), (60, 40035), (0, 40035), ("1.5", 40035), (None, 40035)]
)
async def test_voice_duration_is_a_whole_number_below_60(
    apps: AppClient, duration: Any, errcode: int
) -> None:
    media_id = await upload(apps, "voice", AMR, "memo.amr")
    part = {"media_id": media_id} if duration is None else {"media_id": media_id, "duration": duration}

    assert (await apps.ding_send(work("voice", part))).errcode == errcode


async def test_media_never_expires(apps: AppClient, state: SandboxState) -> None:
    media_id = await upload(apps, "image", PNG, "chart.png")
    state.clock.advance(365 * 24 * 3600)

    assert (await apps.ding_send(work("image", {"media_id": media_id}))).errcode == 0


async def test_a_file_over_10_mb_uploads_but_cannot_be_sent(apps: AppClient) -> None:
    media_id = await upload(apps, "file", b"PK" + b"\x00" * (10 * 1024 * 1024), "big.zip")

    assert (await apps.ding_send(work("file", {"media_id": media_id}))).errcode == 40006


REFUSED: dict[str, tuple[dict[str, Any], int]] = {
    "missing agent_id": (
        {"userid_list": "user01", "msg": {"msgtype": "text", "text": {"content": "x"}}},
        41011,
    ),
    "another agent_id": (text(agent_id=1), 40056),
    "no recipients": (text(userid_list=""), 40035),
    "over 5000 users": (text(userid_list=",".join(f"u{i}" for i in range(5001))), 40035),
    "to_all_user not a bool": (text(to_all_user="yes"), 40035),
    "missing msg": ({"agent_id": DING_AGENT_ID, "userid_list": "user01"}, 40035),
    "missing msgtype": ({"agent_id": DING_AGENT_ID, "userid_list": "user01", "msg": {"text": {}}}, 40035),
    "unknown msgtype": (work("feedCard", {"links": []}), 40035),
    "empty text": (text(""), 40035),
    "msg over 2048 bytes": (text("汉" * 700), 45002),
    "link without picUrl": (work("link", {"messageUrl": "https://e", "title": "t", "text": "x"}), 40035),
    "markdown without title": (work("markdown", {"text": "x"}), 40035),
    "oa without head": (work("oa", {"message_url": "https://e", "body": {}}), 40035),
    "oa head without bgcolor": (work("oa", {**OA, "head": {"text": "t"}}), 40035),
    "oa without body": (work("oa", {"message_url": "https://e", "head": OA["head"]}), 40035),
    "action_card without buttons": (work("action_card", {"title": "t", "markdown": "m"}), 40035),
    "action_card single without url": (
        work("action_card", {"title": "t", "markdown": "m", "single_title": "查看"}),
        40035,
    ),
    "action_card multi without orientation": (
        work(
            "action_card",
            {"title": "t", "markdown": "m", "btn_json_list": [{"title": "a", "action_url": "u"}]},
        ),
        40035,
    ),
    "action_card button without url": (
        work(
            "action_card",
            {"title": "t", "markdown": "m", "btn_orientation": "0", "btn_json_list": [{"title": "a"}]},
        ),
        40035,
    ),
    "image without media_id": (work("image", {}), 40035),
}


@pytest.mark.parametrize(("body", "errcode"), REFUSED.values(), ids=REFUSED.keys())
async def test_invalid_messages_are_refused_with_the_vendor_errcode(
    apps: AppClient, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    reply = await apps.ding_send(body)

    assert reply.errcode == errcode, reply.text
    assert state.delivered() == []


async def test_missing_fields_are_named_in_the_errmsg(apps: AppClient) -> None:
    reply = await apps.ding_send(work("link", {"messageUrl": "https://e", "title": "t", "text": "x"}))

    assert reply.errmsg == "缺少参数 msg.link.picUrl"


async def test_the_send_result_lists_unknown_users_and_departments(apps: AppClient) -> None:
    token = await apps.ding_token()
    sent = await apps.ding_send(text(userid_list="user01,ghost,user02", dept_id_list="1,99"), token=token)
    query = {"agent_id": DING_AGENT_ID, "task_id": sent.json["task_id"]}

    progress = await apps.ding_call("getsendprogress", query, token=token)
    result = await apps.ding_call("getsendresult", query, token=token)

    assert sent.errcode == 0, "unknown users do not fail the send"
    assert progress.json["progress"] == {"progress_in_percent": 100, "status": 2}
    assert result.json["send_result"] == {
        "invalid_user_id_list": ["ghost"],
        "forbidden_user_id_list": [],
        "failed_user_id_list": [],
        "read_user_id_list": [],
        "unread_user_id_list": ["user01", "user02"],
        "invalid_dept_id_list": ["99"],
        "forbidden_list": [],
    }


async def test_task_calls_are_recorded_but_are_not_deliveries(apps: AppClient, state: SandboxState) -> None:
    token = await apps.ding_token()
    sent = await apps.ding_send(text(), token=token)
    task_id = str(sent.json["task_id"])  # a string of digits works too

    await apps.ding_call("getsendprogress", {"agent_id": DING_AGENT_ID, "task_id": task_id}, token=token)
    await apps.ding_call("getsendresult", {"agent_id": DING_AGENT_ID, "task_id": task_id}, token=token)

    assert [entry.msgtype for entry in state.received("dingtalk_work")] == [
        "gettoken",
        "text",
        "getsendprogress",
        "getsendresult",
    ]
    assert len(state.delivered()) == 1


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ({"task_id": 1}, 40035),
        ({"task_id": None}, 40035),
        ({"agent_id": 1}, 40056),
        ({"agent_id": None}, 41011),
    ],
    ids=["unknown task", "no task", "another agent_id", "no agent_id"],
)
async def test_task_queries_check_agent_and_task(
    apps: AppClient, query: dict[str, Any], errcode: int
) -> None:
    sent = await apps.ding_send(text())
    body = {"agent_id": DING_AGENT_ID, "task_id": sent.json["task_id"], **query}
    body = {key: value for key, value in body.items() if value is not None}

    assert (await apps.ding_call("getsendresult", body)).errcode == errcode


async def test_everyone_is_unread_for_a_to_all_user_task(apps: AppClient) -> None:
    sent = await apps.ding_send(text(to_all_user=True, userid_list="ghost"))

    result = await apps.ding_call(
        "getsendresult", {"agent_id": DING_AGENT_ID, "task_id": sent.json["task_id"]}
    )

    assert result.json["send_result"]["unread_user_id_list"] == ["manager01", "user01", "user02"]
    assert result.json["send_result"]["invalid_user_id_list"] == []


async def test_over_5000_recipients_a_minute_answers_90018(apps: AppClient, state: SandboxState) -> None:
    token = await apps.ding_token()
    thousand = ",".join(f"u{i}" for i in range(1000))
    for _ in range(5):
        assert (await apps.ding_send(text(userid_list=thousand), token=token)).errcode == 0

    limited = await apps.ding_send(text(userid_list="user01"), token=token)
    state.clock.advance(60)
    later = await apps.ding_send(text(userid_list="user01"), token=token)

    assert limited.errcode == 90018
    assert later.errcode == 0
