"""The DingTalk custom robot emulator answers like the vendor (docs/vendors.md, DingTalk group robot)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import (
    DING_KEYWORD_TOKEN,
    DING_SECRET,
    DING_SIGNED_TOKEN,
    DING_TOKEN,
    RobotClient,
    dingtalk_sign,
)

pytestmark = pytest.mark.asyncio


def text(content: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content}, **extra}


ACCEPTED_MESSAGES: dict[str, dict[str, Any]] = {
    "text": text("hello"),
    "text with at": text(
        "@13800001111 disk full",
        at={"atMobiles": ["13800001111"], "atUserIds": ["u1"], "isAtAll": False},
    ),
    "link": {
        "msgtype": "link",
        "link": {"title": "发布", "text": "v1.2", "messageUrl": "https://example.com/r/1"},
    },
    "link with picture": {
        "msgtype": "link",
        "link": {
            "title": "t",
            "text": "x",
            "messageUrl": "https://example.com",
            "picUrl": "https://example.com/p.png",
        },
    },
    "markdown with at all": {
        "msgtype": "markdown",
        "markdown": {"title": "告警", "text": "### 磁盘\n> 91%"},
        "at": {"isAtAll": True},
    },
    "single-button actionCard": {
        "msgtype": "actionCard",
        "actionCard": {
            "title": "审批",
            "text": "请审批",
            "singleTitle": "查看",
            "singleURL": "https://example.com/a",
            "btnOrientation": "0",
        },
    },
    "multi-button actionCard": {
        "msgtype": "actionCard",
        "actionCard": {
            "title": "审批",
            "text": "请审批",
            "btnOrientation": "1",
            "btns": [
                {"title": "同意", "actionURL": "https://example.com/y"},
                {"title": "拒绝", "actionURL": "https://example.com/n"},
            ],
        },
    },
    "feedCard": {
        "msgtype": "feedCard",
        "feedCard": {
            "links": [
                {"title": "a", "messageURL": "https://example.com/a", "picURL": "https://example.com/a.png"},
                {"title": "b", "messageURL": "https://example.com/b", "picURL": "https://example.com/b.png"},
            ]
        },
    },
}


@pytest.mark.parametrize("body", ACCEPTED_MESSAGES.values(), ids=ACCEPTED_MESSAGES.keys())
async def test_each_message_type_is_accepted_and_recorded_exactly_as_sent(
    robots: RobotClient, state: SandboxState, body: dict[str, Any]
) -> None:
    reply = await robots.dingtalk(body)

    assert reply.status == 200
    assert reply.json == {"errcode": 0, "errmsg": "ok"}
    [entry] = state.delivered("dingtalk_robot", "alerts")
    assert entry.body == body
    assert (entry.msgtype, entry.errcode, entry.duplicate) == (body["msgtype"], 0, False)


async def test_an_unknown_token_answers_300001(robots: RobotClient, state: SandboxState) -> None:
    reply = await robots.dingtalk(text("hi"), token="no-such-token")

    assert (reply.errcode, reply.errmsg) == (300001, "token is not exist")
    assert state.delivered() == []
    assert [entry.robot for entry in state.received("dingtalk_robot")] == [None]


async def test_a_removed_robot_answers_300001(robots: RobotClient, state: SandboxState) -> None:
    state.remove_dingtalk_robot("alerts")

    assert (await robots.dingtalk(text("hi"))).errcode == 300001
    assert [entry.errcode for entry in state.received(robot="alerts")] == [300001]


async def test_a_disabled_robot_answers_400102(robots: RobotClient, state: SandboxState) -> None:
    state.disable_dingtalk_robot("alerts")

    assert (await robots.dingtalk(text("hi"))).errcode == 400102
    assert state.delivered() == []


async def test_a_correctly_signed_message_is_delivered(robots: RobotClient, state: SandboxState) -> None:
    reply = await robots.dingtalk_signed(text("signed hello"))

    assert reply.errcode == 0
    assert [entry.body for entry in state.delivered(robot="signed")] == [text("signed hello")]


async def test_a_wrong_signature_answers_310000_sign_not_match(robots: RobotClient) -> None:
    now_ms = int(time.time() * 1000)

    reply = await robots.dingtalk(
        text("hi"), DING_SIGNED_TOKEN, timestamp_ms=now_ms, sign=dingtalk_sign("SECwrong", now_ms)
    )

    assert (reply.errcode, reply.errmsg) == (310000, "sign not match")


async def test_a_signing_robot_refuses_unsigned_messages(robots: RobotClient, state: SandboxState) -> None:
    unsigned = await robots.dingtalk(text("hi"), DING_SIGNED_TOKEN)
    no_sign = await robots.dingtalk(text("hi"), DING_SIGNED_TOKEN, timestamp_ms=int(time.time() * 1000))

    assert (unsigned.errcode, unsigned.errmsg) == (310000, "invalid timestamp")
    assert (no_sign.errcode, no_sign.errmsg) == (310000, "sign not match")
    assert state.delivered() == []


async def test_a_timestamp_more_than_an_hour_old_answers_310000_invalid_timestamp(
    robots: RobotClient,
) -> None:
    two_hours_ago = int((time.time() - 7200) * 1000)

    reply = await robots.dingtalk_signed(text("hi"), now_ms=two_hours_ago)

    assert (reply.errcode, reply.errmsg) == (310000, "invalid timestamp")


async def test_a_timestamp_within_the_hour_is_accepted(robots: RobotClient) -> None:
    fifty_minutes_ago = int((time.time() - 3000) * 1000)

    assert (await robots.dingtalk_signed(text("hi"), now_ms=fifty_minutes_ago)).errcode == 0


async def test_the_signature_window_follows_the_sandbox_clock(
    robots: RobotClient, state: SandboxState
) -> None:
    state.clock.advance(2 * 3600)

    reply = await robots.dingtalk_signed(text("hi"))

    assert (reply.errcode, reply.errmsg) == (310000, "invalid timestamp")


async def test_a_signature_that_is_not_url_encoded_is_refused(robots: RobotClient) -> None:
    # A "+" left raw in the query decodes as a space, so the vendor sees a different signature.
    timestamp_ms = int(time.time() * 1000)
    while True:
        mac = hmac.new(DING_SECRET.encode(), f"{timestamp_ms}\n{DING_SECRET}".encode(), hashlib.sha256)
        raw_sign = base64.b64encode(mac.digest()).decode()
        if "+" in raw_sign:
            break
        timestamp_ms += 1

    reply = await robots.dingtalk(text("hi"), DING_SIGNED_TOKEN, timestamp_ms=timestamp_ms, sign=raw_sign)

    assert (reply.errcode, reply.errmsg) == (310000, "sign not match")


@pytest.mark.parametrize(
    "body",
    [
        text("部署告警: db down"),
        text("deploy finished"),
        {"msgtype": "link", "link": {"title": "deploy", "text": "x", "messageUrl": "https://e.com"}},
        {
            "msgtype": "feedCard",
            "feedCard": {
                "links": [{"title": "告警 1", "messageURL": "https://e.com", "picURL": "https://e.com/p"}]
            },
        },
    ],
    ids=["keyword in content", "other keyword", "keyword in link title", "keyword in feed link title"],
)
async def test_a_message_holding_a_keyword_passes_the_keyword_check(
    robots: RobotClient, body: dict[str, Any]
) -> None:
    assert (await robots.dingtalk(body, DING_KEYWORD_TOKEN)).errcode == 0


async def test_a_message_without_a_keyword_answers_310000(robots: RobotClient, state: SandboxState) -> None:
    reply = await robots.dingtalk(text("all good"), DING_KEYWORD_TOKEN)

    assert (reply.errcode, reply.errmsg) == (310000, "keywords not in content")
    assert state.delivered() == []


async def test_a_body_over_20000_bytes_answers_460101(robots: RobotClient) -> None:
    reply = await robots.dingtalk(text("a" * 20000))

    assert (reply.errcode, reply.errmsg) == (460101, "message too long")


async def test_an_unknown_msgtype_answers_400105(robots: RobotClient) -> None:
    assert (await robots.dingtalk({"msgtype": "oa", "oa": {}})).errcode == 400105


async def test_a_body_that_is_not_json_answers_40035(robots: RobotClient, state: SandboxState) -> None:
    reply = await robots.post(f"/robot/send?access_token={DING_TOKEN}", b"{not json")

    assert reply.errcode == 40035
    assert state.received()[0].body == {}


MISSING_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "msgtype": ({"text": {"content": "x"}}, "msgtype"),
    "text object": ({"msgtype": "text"}, "text"),
    "text.content": ({"msgtype": "text", "text": {}}, "text.content"),
    "empty text.content": (text(""), "text.content"),
    "link.messageUrl": ({"msgtype": "link", "link": {"title": "t", "text": "x"}}, "link.messageUrl"),
    "markdown.title": ({"msgtype": "markdown", "markdown": {"text": "x"}}, "markdown.title"),
    "actionCard.singleURL": (
        {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x", "singleTitle": "go"}},
        "actionCard.singleURL",
    ),
    "actionCard buttons": (
        {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x", "btns": []}},
        "actionCard.btns",
    ),
    "actionCard button actionURL": (
        {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x", "btns": [{"title": "ok"}]}},
        "actionCard.btns[0].actionURL",
    ),
    "feedCard.links": ({"msgtype": "feedCard", "feedCard": {"links": []}}, "feedCard.links"),
    "feedCard link picURL": (
        {"msgtype": "feedCard", "feedCard": {"links": [{"title": "t", "messageURL": "https://e.com"}]}},
        "feedCard.links[0].picURL",
    ),
}


@pytest.mark.parametrize(("body", "field"), MISSING_FIELDS.values(), ids=MISSING_FIELDS.keys())
async def test_a_missing_required_field_answers_40035_naming_the_field(
    robots: RobotClient, state: SandboxState, body: dict[str, Any], field: str
) -> None:
    reply = await robots.dingtalk(body)

    assert reply.errcode == 40035
    assert reply.errmsg.startswith("缺少参数 ")
    assert field in reply.errmsg
    assert state.delivered() == []


@pytest.mark.parametrize(
    "body",
    [
        {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "t",
                "text": "x",
                "singleTitle": "go",
                "singleURL": "https://e.com",
                "btnOrientation": "2",
            },
        },
        text("x", at={"atMobiles": "13800001111"}),
        text("x", at={"isAtAll": "true"}),
        text("x", msgUuid=""),
    ],
    ids=["btnOrientation 2", "atMobiles not a list", "isAtAll not a bool", "empty msgUuid"],
)
async def test_a_malformed_field_answers_40035(robots: RobotClient, body: dict[str, Any]) -> None:
    assert (await robots.dingtalk(body)).errcode == 40035


async def test_a_repeated_msg_uuid_succeeds_without_a_second_delivery(
    robots: RobotClient, state: SandboxState
) -> None:
    body = text("only once", msgUuid="3f0c6a52-7d1b-4b8e-9f00-5c1e2d3a4b5c")

    first = await robots.dingtalk(body)
    retry = await robots.dingtalk(body)

    assert first.json == retry.json == {"errcode": 0, "errmsg": "ok"}
    assert [entry.body for entry in state.delivered()] == [body]
    assert [entry.duplicate for entry in state.received()] == [False, True]


async def test_msg_uuid_is_scoped_to_one_robot(robots: RobotClient, state: SandboxState) -> None:
    body = text("告警 same id", msgUuid="uuid-1")

    await robots.dingtalk(body)
    await robots.dingtalk(body, DING_KEYWORD_TOKEN)

    assert sorted(str(entry.robot) for entry in state.delivered()) == ["alerts", "keywords"]


async def test_a_refused_message_does_not_claim_its_msg_uuid(
    robots: RobotClient, state: SandboxState
) -> None:
    await robots.dingtalk(text("", msgUuid="uuid-2"))

    assert (await robots.dingtalk(text("fixed", msgUuid="uuid-2"))).errcode == 0
    assert len(state.delivered()) == 1


async def test_the_21st_message_in_a_minute_throttles_the_robot_for_ten_minutes(
    robots: RobotClient, state: SandboxState
) -> None:
    for index in range(20):
        assert (await robots.dingtalk(text(f"m{index}"))).errcode == 0

    limited = await robots.dingtalk(text("m20"))
    assert (limited.errcode, limited.errmsg) == (130101, "send too fast, exceed 20 times per minute")

    state.clock.advance(61)  # the minute has passed, but the robot is throttled
    assert (await robots.dingtalk(text("after a minute"))).errcode == 130101
    state.clock.advance(600 - 61 - 1)
    assert (await robots.dingtalk(text("just before ten minutes"))).errcode == 130101
    state.clock.advance(2)
    assert (await robots.dingtalk(text("after ten minutes"))).errcode == 0
    assert len(state.delivered(robot="alerts")) == 21


async def test_the_throttle_is_per_robot(robots: RobotClient) -> None:
    for index in range(21):
        await robots.dingtalk(text(f"m{index}"))

    assert (await robots.dingtalk(text("告警 elsewhere"), DING_KEYWORD_TOKEN)).errcode == 0


async def test_duplicates_do_not_use_up_the_rate_limit(robots: RobotClient) -> None:
    body = text("retried", msgUuid="uuid-3")
    for _ in range(25):
        assert (await robots.dingtalk(body)).errcode == 0
    for index in range(19):
        assert (await robots.dingtalk(text(f"m{index}"))).errcode == 0


async def test_errmsg_never_contains_the_token_or_secret(robots: RobotClient) -> None:
    now_ms = int(time.time() * 1000)
    replies = [
        await robots.dingtalk(text("x"), token=DING_TOKEN + "x"),
        await robots.dingtalk(text("x"), DING_SIGNED_TOKEN, timestamp_ms=now_ms, sign="bad"),
        await robots.dingtalk(text("x"), DING_SIGNED_TOKEN),
        await robots.dingtalk(text("x"), DING_KEYWORD_TOKEN),
        await robots.dingtalk({"msgtype": "text"}),
    ]

    for reply in replies:
        assert reply.errcode != 0
        for secret in (DING_TOKEN, DING_SIGNED_TOKEN, DING_SECRET, DING_KEYWORD_TOKEN):
            assert secret not in reply.text
