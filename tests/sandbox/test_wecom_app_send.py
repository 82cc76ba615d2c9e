"""The WeCom application send validates and answers like the vendor
(docs/vendors.md, WeCom application messages)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import AMR, MP4, PNG, WECOM_AGENT_ID, WECOM_APP, AppClient


def message(msgtype: str, content: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {"touser": "zhangsan", "agentid": WECOM_AGENT_ID, "msgtype": msgtype, msgtype: content, **envelope}


def text(content: str, **envelope: Any) -> dict[str, Any]:
    return message("text", {"content": content}, **envelope)


def article(index: int) -> dict[str, Any]:
    return {"title": f"t{index}", "url": f"https://example.com/{index}"}


async def upload(apps: AppClient, media_type: str, content: bytes) -> str:
    reply = await apps.wecom_upload(media_type, content, f"sample.{media_type}")
    assert reply.errcode == 0, reply.text
    return str(reply.json["media_id"])


ACCEPTED: dict[str, dict[str, Any]] = {
    "text": text("磁盘使用率 91%"),
    "markdown": message("markdown", {"content": "**告警** <font color='warning'>high</font>"}),
    "textcard": message(
        "textcard",
        {"title": "审批", "description": "请处理", "url": "https://example.com/a", "btntxt": "详情"},
    ),
    "news with 8 articles": message("news", {"articles": [article(i) for i in range(8)]}),
    "news to a mini program": message(
        "news", {"articles": [{"title": "t", "appid": "wx123", "pagepath": "p"}]}
    ),
    "miniprogram_notice": message(
        "miniprogram_notice",
        {
            "appid": "wx123",
            "title": "会议",
            "content_item": [{"key": f"k{i}", "value": "v"} for i in range(10)],
        },
    ),
    "text_notice card": message(
        "template_card",
        {"card_type": "text_notice", "card_action": {"type": 1, "url": "https://example.com"}},
    ),
    "news_notice card": message(
        "template_card",
        {"card_type": "news_notice", "image_text_area": {"title": "x", "image_url": "https://e/i"}},
    ),
    "button_interaction card": message("template_card", {"card_type": "button_interaction", "task_id": "t1"}),
    "vote_interaction card": message("template_card", {"card_type": "vote_interaction", "task_id": "t2"}),
    "multiple_interaction card": message(
        "template_card", {"card_type": "multiple_interaction", "task_id": "t3"}
    ),
    "to a party and a tag only": text("hi", touser="", toparty="1", totag="1"),
    "with options": text(
        "hi", safe=1, enable_id_trans=1, enable_duplicate_check=1, duplicate_check_interval=14400
    ),
    "agentid as a string": text("hi", agentid=str(WECOM_AGENT_ID)),
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_each_message_type_is_accepted_and_recorded(
    apps: AppClient, state: SandboxState, body: dict[str, Any]
) -> None:
    reply = await apps.wecom_send(body)

    assert reply.status == 200
    assert reply.errcode == 0, reply.text
    [entry] = state.delivered("wecom_app", WECOM_APP)
    assert entry.body == body
    assert entry.msgtype == body["msgtype"]


async def test_a_success_answers_every_documented_field(apps: AppClient) -> None:
    first = await apps.wecom_send(text("one"))
    second = await apps.wecom_send(text("two"))

    assert set(first.json) == {
        "errcode",
        "errmsg",
        "invaliduser",
        "invalidparty",
        "invalidtag",
        "unlicenseduser",
        "msgid",
        "response_code",
    }
    assert first.json["errmsg"] == "ok"
    assert first.json["invaliduser"] == first.json["unlicenseduser"] == ""
    assert isinstance(first.json["msgid"], str) and first.json["msgid"]
    assert isinstance(first.json["response_code"], str)
    assert first.json["msgid"] != second.json["msgid"]


@pytest.mark.parametrize("media_type", ["image", "voice", "video", "file"])
async def test_media_messages_take_a_media_id_this_app_uploaded(
    apps: AppClient, state: SandboxState, media_type: str
) -> None:
    content = {"image": PNG, "voice": AMR, "video": MP4, "file": b"%PDF-1.7 report"}[media_type]
    media_id = await upload(apps, media_type, content)

    accepted = await apps.wecom_send(message(media_type, {"media_id": media_id}))
    unknown = await apps.wecom_send(message(media_type, {"media_id": "never-uploaded"}))

    assert accepted.errcode == 0
    assert unknown.errcode == 40007


async def test_media_expires_after_3_days(apps: AppClient, state: SandboxState) -> None:
    media_id = await upload(apps, "image", PNG)
    state.clock.advance(3 * 24 * 3600 - 60)
    assert (await apps.wecom_send(message("image", {"media_id": media_id}))).errcode == 0

    state.clock.advance(120)

    assert (await apps.wecom_send(message("image", {"media_id": media_id}))).errcode == 40007


async def test_mpnews_needs_an_uploaded_thumb(apps: AppClient) -> None:
    thumb = await upload(apps, "image", PNG)

    def mpnews(thumb_media_id: str, **envelope: Any) -> dict[str, Any]:
        item = {"title": "周报", "thumb_media_id": thumb_media_id, "content": "<p>hi</p>"}
        return message("mpnews", {"articles": [item]}, **envelope)

    assert (await apps.wecom_send(mpnews(thumb, safe=2))).errcode == 0
    assert (await apps.wecom_send(mpnews("never-uploaded"))).errcode == 40007


async def test_a_media_id_of_another_app_is_invalid(apps: AppClient, state: SandboxState) -> None:
    media_id = await upload(apps, "image", PNG)
    state.add_wecom_app("finance", "ww-finance", "finance-secret", 1000003)
    token = (await apps.wecom_gettoken("ww-finance", "finance-secret")).json["access_token"]

    reply = await apps.wecom_send(message("image", {"media_id": media_id}, agentid=1000003), token=token)

    assert reply.errcode == 40007


REFUSED: dict[str, tuple[dict[str, Any], int]] = {
    "missing agentid": ({"touser": "zhangsan", "msgtype": "text", "text": {"content": "hi"}}, 41011),
    "another app's agentid": (text("hi", agentid=1), 40056),
    "missing msgtype": ({"touser": "zhangsan", "agentid": WECOM_AGENT_ID, "text": {"content": "x"}}, 40008),
    "unknown msgtype": (message("carrier_pigeon", {}), 40008),
    "robot-only msgtype": (message("markdown_v2", {"content": "x"}), 40008),
    "no recipients": (text("hi", touser=""), 40035),
    "over 1000 users": (text("hi", touser="|".join(f"u{i}" for i in range(1001))), 40031),
    "over 100 parties": (text("hi", toparty="|".join(str(i) for i in range(101))), 82002),
    "over 100 tags": (text("hi", totag="|".join(str(i) for i in range(101))), 82003),
    "missing text object": ({"touser": "zhangsan", "agentid": WECOM_AGENT_ID, "msgtype": "text"}, 40035),
    "empty text": (text(""), 44004),
    "empty markdown": (message("markdown", {"content": ""}), 44004),
    "markdown over 2048 bytes": (message("markdown", {"content": "汉" * 683}), 45002),
    "textcard without description": (
        message("textcard", {"title": "t", "url": "https://example.com"}),
        41033,
    ),
    "textcard without url": (message("textcard", {"title": "t", "description": "d"}), 40035),
    "textcard without title": (message("textcard", {"description": "d", "url": "https://e"}), 40035),
    "textcard title over 128 bytes": (
        message("textcard", {"title": "t" * 129, "description": "d", "url": "https://e"}),
        45002,
    ),
    "textcard description over 512 bytes": (
        message("textcard", {"title": "t", "description": "汉" * 171, "url": "https://e"}),
        45002,
    ),
    "textcard url over 2048 bytes": (
        message("textcard", {"title": "t", "description": "d", "url": "https://e/" + "a" * 2040}),
        45002,
    ),
    "textcard button over 4 characters": (
        message("textcard", {"title": "t", "description": "d", "url": "https://e", "btntxt": "更多详情页"}),
        45002,
    ),
    "news without articles": (message("news", {"articles": []}), 40035),
    "news with 9 articles": (message("news", {"articles": [article(i) for i in range(9)]}), 45008),
    "news article without url or appid": (message("news", {"articles": [{"title": "t"}]}), 40035),
    "news article without title": (message("news", {"articles": [{"url": "https://e"}]}), 40035),
    "mpnews with 9 articles": (
        message("mpnews", {"articles": [{"title": "t", "thumb_media_id": "m", "content": "c"}] * 9}),
        45008,
    ),
    "mpnews article without content": (
        message("mpnews", {"articles": [{"title": "t", "thumb_media_id": "m"}]}),
        40035,
    ),
    "miniprogram_notice without appid": (message("miniprogram_notice", {"title": "t"}), 40035),
    "miniprogram_notice without title": (message("miniprogram_notice", {"appid": "wx1"}), 40035),
    "miniprogram_notice with 11 items": (
        message(
            "miniprogram_notice",
            {"appid": "wx1", "title": "t", "content_item": [{"key": "k", "value": "v"}] * 11},
        ),
        40035,
    ),
    "unknown card type": (message("template_card", {"card_type": "poster"}), 40035),
    "text_notice without card_action": (message("template_card", {"card_type": "text_notice"}), 40035),
    "news_notice without an image": (message("template_card", {"card_type": "news_notice"}), 40035),
    "interaction card without task_id": (message("template_card", {"card_type": "vote_interaction"}), 40035),
    "media message without media_id": (message("file", {}), 40035),
    "safe 2 outside mpnews": (text("hi", safe=2), 40074),
    "safe out of range": (text("hi", safe=3), 40035),
    "duplicate check over 4 hours": (text("hi", duplicate_check_interval=14401), 40035),
}


@pytest.mark.parametrize(("body", "errcode"), REFUSED.values(), ids=REFUSED.keys())
async def test_invalid_messages_are_refused_with_the_vendor_errcode(
    apps: AppClient, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    reply = await apps.wecom_send(body)

    assert reply.status == 200
    assert reply.errcode == errcode, reply.text
    assert state.delivered() == []
    [entry] = [entry for entry in state.received("wecom_app") if entry.msgtype != "gettoken"]
    assert (entry.robot, entry.errcode, entry.body) == (WECOM_APP, errcode, body)


async def test_errmsg_follows_the_vendor_style_and_never_contains_the_token(apps: AppClient) -> None:
    token = await apps.wecom_token()

    reply = await apps.wecom_send(message("carrier_pigeon", {}), token=token)

    assert re.fullmatch(
        r"invalid message type, hint: \[[^\]]+\], from ip: 127\.0\.0\.1, "
        r"more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=40008",
        reply.errmsg,
    )
    assert token not in reply.text


async def test_a_body_that_is_not_json_is_refused(apps: AppClient) -> None:
    token = await apps.wecom_token()
    async with apps.session.post(
        f"{apps.base_url}/cgi-bin/message/send", params={"access_token": token}, data=b"\xff not json"
    ) as response:
        assert (await response.json())["errcode"] == 47001


async def test_text_over_2048_bytes_is_accepted_and_delivered_truncated(
    apps: AppClient, state: SandboxState
) -> None:
    long_text = "汉" * 700  # 2100 bytes; 682 characters fit in 2048

    reply = await apps.wecom_send(text(long_text))

    assert reply.errcode == 0
    [entry] = state.delivered("wecom_app")
    assert entry.body["text"]["content"] == "汉" * 682


async def test_invalid_recipients_are_listed_and_the_rest_still_receive(
    apps: AppClient, state: SandboxState
) -> None:
    body = text("hi", touser="ZhangSan|Ghost|zhaoliu", toparty="1|99", totag="1|77")

    reply = await apps.wecom_send(body)

    assert reply.errcode == 0
    assert reply.json["invaliduser"] == "ghost"
    assert reply.json["invalidparty"] == "99"
    assert reply.json["invalidtag"] == "77"
    assert reply.json["unlicenseduser"] == "zhaoliu"
    assert len(state.delivered("wecom_app")) == 1


async def test_all_recipients_invalid_answers_81013_and_nothing_is_sent(
    apps: AppClient, state: SandboxState
) -> None:
    reply = await apps.wecom_send(text("hi", touser="ghost1|Ghost2", toparty="99"))

    assert reply.errcode == 81013
    assert reply.json["invaliduser"] == "ghost1|ghost2"
    assert reply.json["invalidparty"] == "99"
    assert "msgid" not in reply.json
    assert state.delivered() == []


async def test_only_unlicensed_users_is_81013_too(apps: AppClient) -> None:
    reply = await apps.wecom_send(text("hi", touser="zhaoliu"))

    assert reply.errcode == 81013
    assert reply.json["unlicenseduser"] == "zhaoliu"


async def test_at_all_reaches_everyone_and_ignores_parties_and_tags(apps: AppClient) -> None:
    reply = await apps.wecom_send(text("hi", touser="@all", toparty="99", totag="77"))

    assert reply.errcode == 0
    assert reply.json["invalidparty"] == reply.json["invalidtag"] == ""


async def test_over_30_messages_a_minute_to_one_member_answers_45009(
    apps: AppClient, state: SandboxState
) -> None:
    token = await apps.wecom_token()
    for index in range(30):
        assert (await apps.wecom_send(text(f"m{index}"), token=token)).errcode == 0

    limited = await apps.wecom_send(text("one too many", touser="zhangsan|lisi"), token=token)
    other_member = await apps.wecom_send(text("to lisi", touser="lisi"), token=token)
    state.clock.advance(60)
    later = await apps.wecom_send(text("a minute later"), token=token)

    assert limited.errcode == 45009
    assert other_member.errcode == 0
    assert later.errcode == 0


async def test_a_refused_message_does_not_use_up_the_rate(apps: AppClient) -> None:
    token = await apps.wecom_token()
    for _ in range(5):
        await apps.wecom_send(text(""), token=token)
    for index in range(30):
        assert (await apps.wecom_send(text(f"m{index}"), token=token)).errcode == 0
