"""The WeCom group robot emulator answers like the vendor (docs/vendors.md, WeCom group robot)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import WECOM_KEY, RobotClient

pytestmark = pytest.mark.asyncio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64


def image_message(raw: bytes, md5: str | None = None) -> dict[str, Any]:
    return {
        "msgtype": "image",
        "image": {
            "base64": base64.b64encode(raw).decode(),
            "md5": md5 if md5 is not None else hashlib.md5(raw).hexdigest(),
        },
    }


def text(content: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content}}


ACCEPTED_MESSAGES: dict[str, dict[str, Any]] = {
    "text with mentions": {
        "msgtype": "text",
        "text": {
            "content": "磁盘使用率 91%",
            "mentioned_list": ["wangqing", "@all"],
            "mentioned_mobile_list": ["13800001111"],
        },
    },
    "markdown": {"msgtype": "markdown", "markdown": {"content": '# 告警\n<font color="warning">high</font>'}},
    "markdown_v2": {"msgtype": "markdown_v2", "markdown_v2": {"content": "| a | b |\n|---|---|\n| 1 | 2 |"}},
    "png image": image_message(PNG),
    "jpeg image": image_message(JPEG),
    "news with one article": {
        "msgtype": "news",
        "news": {"articles": [{"title": "发布", "url": "https://example.com/r/1"}]},
    },
    "news with eight articles": {
        "msgtype": "news",
        "news": {
            "articles": [
                {"title": f"t{i}", "url": f"https://example.com/{i}", "picurl": "https://example.com/p.png"}
                for i in range(8)
            ]
        },
    },
    "file": {"msgtype": "file", "file": {"media_id": "media-file-1"}},
    "voice": {"msgtype": "voice", "voice": {"media_id": "media-voice-1"}},
    "text_notice card": {
        "msgtype": "template_card",
        "template_card": {"card_type": "text_notice", "main_title": {"title": "hi"}},
    },
    "news_notice card": {
        "msgtype": "template_card",
        "template_card": {"card_type": "news_notice", "card_image": {"url": "https://example.com/i.png"}},
    },
}


@pytest.mark.parametrize("body", ACCEPTED_MESSAGES.values(), ids=ACCEPTED_MESSAGES.keys())
async def test_each_message_type_is_accepted_and_recorded_exactly_as_sent(
    robots: RobotClient, state: SandboxState, body: dict[str, Any]
) -> None:
    state.add_robot_media("ops", "media-file-1")
    state.add_robot_media("ops", "media-voice-1")

    reply = await robots.wecom(body)

    assert reply.status == 200
    assert reply.json == {"errcode": 0, "errmsg": "ok"}
    [entry] = state.delivered("wecom_robot", "ops")
    assert entry.body == body
    assert entry.msgtype == body["msgtype"]
    assert (entry.channel, entry.robot, entry.errcode, entry.errmsg) == ("wecom_robot", "ops", 0, "ok")


async def test_an_unknown_key_answers_93000_and_nothing_is_delivered(
    robots: RobotClient, state: SandboxState
) -> None:
    reply = await robots.wecom(text("hi"), key="no-such-key")

    assert reply.errcode == 93000
    assert "invalid webhook url" in reply.errmsg
    assert "no-such-key" not in reply.errmsg
    assert state.delivered() == []
    [entry] = state.received("wecom_robot")
    assert entry.robot is None and entry.errcode == 93000


async def test_a_removed_robot_answers_93000_and_is_recorded_under_its_name(
    robots: RobotClient, state: SandboxState
) -> None:
    state.remove_wecom_robot("ops")

    reply = await robots.wecom(text("hi"))

    assert reply.errcode == 93000
    assert [entry.errcode for entry in state.received(robot="ops")] == [93000]


async def test_errmsg_follows_the_vendor_style_and_never_contains_the_key(robots: RobotClient) -> None:
    reply = await robots.wecom({"msgtype": "carrier_pigeon"})

    assert reply.status == 200
    assert reply.errcode == 40008
    assert re.fullmatch(
        r"invalid message type, hint: \[[^\]]+\], from ip: 127\.0\.0\.1, "
        r"more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=40008",
        reply.errmsg,
    )
    assert WECOM_KEY not in reply.text


async def test_a_body_that_is_not_json_is_refused(robots: RobotClient, state: SandboxState) -> None:
    reply = await robots.post(f"/cgi-bin/webhook/send?key={WECOM_KEY}", b"\xff not json")

    assert reply.errcode == 47001
    [entry] = state.received()
    assert entry.body == {} and entry.msgtype == ""


REJECTED_MESSAGES: dict[str, tuple[dict[str, Any], int]] = {
    "missing msgtype": ({"text": {"content": "hi"}}, 40008),
    "unknown msgtype": ({"msgtype": "textcard", "textcard": {}}, 40008),
    "missing text object": ({"msgtype": "text"}, 40035),
    "missing text content": ({"msgtype": "text", "text": {}}, 44004),
    "empty text content": (text(""), 44004),
    "text content not a string": ({"msgtype": "text", "text": {"content": 5}}, 40035),
    "text over 2048 bytes": (text("a" * 2049), 40058),
    "chinese text over 2048 bytes": (text("告" * 683), 40058),
    "mentioned_list not a list": (
        {"msgtype": "text", "text": {"content": "x", "mentioned_list": "a"}},
        40035,
    ),
    "mentioned_mobile_list with a number": (
        {"msgtype": "text", "text": {"content": "x", "mentioned_mobile_list": [138]}},
        40035,
    ),
    "empty markdown": ({"msgtype": "markdown", "markdown": {"content": ""}}, 44004),
    "markdown over 4096 bytes": ({"msgtype": "markdown", "markdown": {"content": "a" * 4097}}, 40058),
    "markdown_v2 over 4096 bytes": (
        {"msgtype": "markdown_v2", "markdown_v2": {"content": "a" * 4097}},
        40058,
    ),
    "image that is not base64": ({"msgtype": "image", "image": {"base64": "%%%", "md5": "0" * 32}}, 40035),
    "image with a wrong md5": (image_message(PNG, md5=hashlib.md5(b"other").hexdigest()), 40035),
    "image without md5": ({"msgtype": "image", "image": {"base64": base64.b64encode(PNG).decode()}}, 40035),
    "gif image": (image_message(GIF), 40005),
    "image over 2 MB": (image_message(PNG + b"\x00" * (2 * 1024 * 1024)), 40009),
    "news without articles": ({"msgtype": "news", "news": {"articles": []}}, 40035),
    "news with nine articles": (
        {"msgtype": "news", "news": {"articles": [{"title": "t", "url": "https://e.com"}] * 9}},
        45008,
    ),
    "news article without url": ({"msgtype": "news", "news": {"articles": [{"title": "t"}]}}, 40035),
    "news article without title": (
        {"msgtype": "news", "news": {"articles": [{"url": "https://e.com"}]}},
        40035,
    ),
    "file without media_id": ({"msgtype": "file", "file": {}}, 40035),
    "file with unknown media_id": ({"msgtype": "file", "file": {"media_id": "nope"}}, 40007),
    "voice with unknown media_id": ({"msgtype": "voice", "voice": {"media_id": "nope"}}, 40007),
    "template card of an app-only type": (
        {"msgtype": "template_card", "template_card": {"card_type": "vote_interaction"}},
        40035,
    ),
    "template card without card_type": ({"msgtype": "template_card", "template_card": {}}, 40035),
}


@pytest.mark.parametrize(("body", "errcode"), REJECTED_MESSAGES.values(), ids=REJECTED_MESSAGES.keys())
async def test_invalid_messages_are_refused_with_the_vendor_errcode_and_recorded(
    robots: RobotClient, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    reply = await robots.wecom(body)

    assert reply.status == 200
    assert reply.errcode == errcode
    assert state.delivered() == []
    [entry] = state.received("wecom_robot", "ops")
    assert entry.body == body and entry.errcode == errcode and entry.errmsg == reply.errmsg


async def test_content_limits_count_utf8_bytes_and_allow_exactly_the_limit(robots: RobotClient) -> None:
    assert (await robots.wecom(text("a" * 2048))).errcode == 0
    assert (await robots.wecom(text("告" * 682))).errcode == 0  # 2046 bytes
    markdown = {"msgtype": "markdown", "markdown": {"content": "a" * 4096}}
    assert (await robots.wecom(markdown)).errcode == 0


async def test_media_is_usable_only_by_the_robot_it_was_uploaded_for(
    robots: RobotClient, state: SandboxState
) -> None:
    state.add_wecom_robot("dev", "wecom-key-dev")
    state.add_robot_media("dev", "media-of-dev")

    reply = await robots.wecom({"msgtype": "file", "file": {"media_id": "media-of-dev"}})

    assert reply.errcode == 40007


async def test_robot_media_expires_after_three_days(robots: RobotClient, state: SandboxState) -> None:
    state.add_robot_media("ops", "media-1")
    file_message = {"msgtype": "file", "file": {"media_id": "media-1"}}

    state.clock.advance(3 * 24 * 3600 - 60)
    assert (await robots.wecom(file_message)).errcode == 0
    state.clock.advance(120)
    assert (await robots.wecom(file_message)).errcode == 40007


async def test_the_21st_message_in_a_minute_answers_45009_until_the_window_slides(
    robots: RobotClient, state: SandboxState
) -> None:
    for index in range(20):
        assert (await robots.wecom(text(f"m{index}"))).errcode == 0

    limited = await robots.wecom(text("m20"))
    assert limited.errcode == 45009
    assert "api freq out of limit" in limited.errmsg

    state.clock.advance(61)
    assert (await robots.wecom(text("m21"))).errcode == 0
    assert len(state.delivered(robot="ops")) == 21
    assert len(state.received(robot="ops")) == 22


async def test_refused_messages_do_not_use_up_the_rate_limit(robots: RobotClient) -> None:
    for _ in range(25):
        assert (await robots.wecom(text(""))).errcode == 44004
    for index in range(20):
        assert (await robots.wecom(text(f"m{index}"))).errcode == 0


async def test_each_robot_has_its_own_rate_limit(robots: RobotClient, state: SandboxState) -> None:
    state.add_wecom_robot("dev", "wecom-key-dev")
    for index in range(20):
        assert (await robots.wecom(text(f"m{index}"))).errcode == 0

    assert (await robots.wecom(text("other robot"), key="wecom-key-dev")).errcode == 0
