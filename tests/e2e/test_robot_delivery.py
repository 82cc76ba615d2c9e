"""Every message kind of both robot channels arrives at the vendor as the JSON the vendor documents."""

from __future__ import annotations

import base64
import hashlib

from google.protobuf import struct_pb2

from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway
from tests.media_samples import PNG


async def send(gateway: Gateway, account: str, message: pb.Message, **fields: object) -> pb.SendResponse:
    return await gateway.stub.Send(pb.SendRequest(account=account, message=message, **fields))  # type: ignore[arg-type]


def only_delivered(gateway: Gateway, channel: str, robot: str) -> dict[str, object]:
    delivered = gateway.sandbox.delivered(channel, robot)
    assert len(delivered) == 1, delivered
    return delivered[0].body


# -- DingTalk robot ------------------------------------------------------------------------------


async def test_dingtalk_text_mentions_people_and_is_signed(gateway: Gateway) -> None:
    response = await send(
        gateway,
        "ops-dingtalk",
        pb.Message(text=pb.Text(content="deploy finished @13800000001")),
        recipients=pb.Recipients(mobiles=["13800000001", "13800000002"], user_ids=["manager01"]),
    )

    assert response.state == pb.MESSAGE_STATE_SENT
    assert len(response.message_id) == 26
    assert response.recallable is False
    body = only_delivered(gateway, "dingtalk_robot", "ops-dingtalk")
    assert body == {
        "msgtype": "text",
        # DingTalk only pings a mobile whose @token is in the text: the missing ones are appended.
        "text": {"content": "deploy finished @13800000001 @13800000002 @manager01"},
        "at": {"atMobiles": ["13800000001", "13800000002"], "atUserIds": ["manager01"], "isAtAll": False},
        "msgUuid": response.message_id,
    }


async def test_dingtalk_text_to_everyone_sets_is_at_all(gateway: Gateway) -> None:
    await send(
        gateway,
        "plain-dingtalk",
        pb.Message(text=pb.Text(content="all hands")),
        recipients=pb.Recipients(all=True),
    )
    body = only_delivered(gateway, "dingtalk_robot", "plain-dingtalk")
    assert body["at"] == {"atMobiles": [], "atUserIds": [], "isAtAll": True}


async def test_dingtalk_msg_uuid_is_the_message_id_never_the_callers_idempotency_key(
    gateway: Gateway,
) -> None:
    response = await send(
        gateway, "ops-dingtalk", pb.Message(text=pb.Text(content="x")), idempotency_key="order-42"
    )
    assert only_delivered(gateway, "dingtalk_robot", "ops-dingtalk")["msgUuid"] == response.message_id


async def test_dingtalk_markdown(gateway: Gateway) -> None:
    response = await send(
        gateway,
        "ops-dingtalk",
        pb.Message(markdown=pb.Markdown(title="Deploy", content="### Deploy\n- **api** ok")),
        recipients=pb.Recipients(user_ids=["oncall"]),
    )
    assert only_delivered(gateway, "dingtalk_robot", "ops-dingtalk") == {
        "msgtype": "markdown",
        "markdown": {"title": "Deploy", "text": "### Deploy\n- **api** ok @oncall"},
        "at": {"atMobiles": [], "atUserIds": ["oncall"], "isAtAll": False},
        "msgUuid": response.message_id,
    }


async def test_dingtalk_link(gateway: Gateway) -> None:
    response = await send(
        gateway,
        "ops-dingtalk",
        pb.Message(
            link=pb.Link(
                title="Report",
                text="Weekly numbers",
                url="https://example.com/r",
                pic_url="https://example.com/p.png",
            )
        ),
    )
    assert only_delivered(gateway, "dingtalk_robot", "ops-dingtalk") == {
        "msgtype": "link",
        "link": {
            "title": "Report",
            "text": "Weekly numbers",
            "messageUrl": "https://example.com/r",
            "picUrl": "https://example.com/p.png",
        },
        "msgUuid": response.message_id,
    }


async def test_dingtalk_action_card_with_one_button_uses_the_single_form(gateway: Gateway) -> None:
    response = await send(
        gateway,
        "ops-dingtalk",
        pb.Message(
            action_card=pb.ActionCard(
                title="Approve?",
                markdown="Release **1.2**",
                buttons=[pb.ActionButton(title="Open", url="https://example.com/a")],
                hide_avatar=True,
            )
        ),
    )
    assert only_delivered(gateway, "dingtalk_robot", "ops-dingtalk") == {
        "msgtype": "actionCard",
        "actionCard": {
            "title": "Approve?",
            "text": "Release **1.2**",
            "singleTitle": "Open",
            "singleURL": "https://example.com/a",
            "btnOrientation": "0",
            "hideAvatar": "1",
        },
        "msgUuid": response.message_id,
    }


async def test_dingtalk_action_card_with_several_buttons_uses_btns(gateway: Gateway) -> None:
    response = await send(
        gateway,
        "ops-dingtalk",
        pb.Message(
            action_card=pb.ActionCard(
                title="Approve?",
                markdown="Release 1.2",
                buttons=[
                    pb.ActionButton(title="Yes", url="https://example.com/y"),
                    pb.ActionButton(title="No", url="https://example.com/n"),
                ],
                orientation=pb.ActionCard.ORIENTATION_HORIZONTAL,
            )
        ),
    )
    assert only_delivered(gateway, "dingtalk_robot", "ops-dingtalk") == {
        "msgtype": "actionCard",
        "actionCard": {
            "title": "Approve?",
            "text": "Release 1.2",
            "btns": [
                {"title": "Yes", "actionURL": "https://example.com/y"},
                {"title": "No", "actionURL": "https://example.com/n"},
            ],
            "btnOrientation": "1",
        },
        "msgUuid": response.message_id,
    }


async def test_dingtalk_feed_card(gateway: Gateway) -> None:
    links = [
        pb.FeedLink(title=f"Item {i}", url=f"https://example.com/{i}", pic_url=f"https://example.com/{i}.png")
        for i in range(2)
    ]
    response = await send(gateway, "ops-dingtalk", pb.Message(feed_card=pb.FeedCard(links=links)))
    assert only_delivered(gateway, "dingtalk_robot", "ops-dingtalk") == {
        "msgtype": "feedCard",
        "feedCard": {
            "links": [
                {
                    "title": f"Item {i}",
                    "messageURL": f"https://example.com/{i}",
                    "picURL": f"https://example.com/{i}.png",
                }
                for i in range(2)
            ]
        },
        "msgUuid": response.message_id,
    }


# -- WeCom robot ---------------------------------------------------------------------------------


async def test_wecom_text_mentions_users_mobiles_and_all(gateway: Gateway) -> None:
    response = await send(
        gateway,
        "team-wecom",
        pb.Message(text=pb.Text(content="build red")),
        recipients=pb.Recipients(user_ids=["zhangsan"], mobiles=["13800000001"], all=True),
    )
    assert response.state == pb.MESSAGE_STATE_SENT
    assert only_delivered(gateway, "wecom_robot", "team-wecom") == {
        "msgtype": "text",
        "text": {
            "content": "build red",
            "mentioned_list": ["zhangsan", "@all"],
            "mentioned_mobile_list": ["13800000001"],
        },
    }


async def test_wecom_markdown(gateway: Gateway) -> None:
    content = '**Alert** <font color="warning">disk 91%</font>'
    await send(gateway, "team-wecom", pb.Message(markdown=pb.Markdown(content=content)))
    assert only_delivered(gateway, "wecom_robot", "team-wecom") == {
        "msgtype": "markdown",
        "markdown": {"content": content},
    }


async def test_wecom_markdown_v2(gateway: Gateway) -> None:
    content = "| a | b |\n|---|---|\n| 1 | 2 |"
    await send(
        gateway,
        "team-wecom",
        pb.Message(markdown=pb.Markdown(content=content, dialect=pb.Markdown.DIALECT_V2)),
    )
    assert only_delivered(gateway, "wecom_robot", "team-wecom") == {
        "msgtype": "markdown_v2",
        "markdown_v2": {"content": content},
    }


async def test_wecom_image_bytes_travel_as_base64_with_md5(gateway: Gateway) -> None:
    image = PNG
    await send(gateway, "team-wecom", pb.Message(image=pb.Image(data=image)))
    assert only_delivered(gateway, "wecom_robot", "team-wecom") == {
        "msgtype": "image",
        "image": {"base64": base64.b64encode(image).decode(), "md5": hashlib.md5(image).hexdigest()},
    }


async def test_wecom_news(gateway: Gateway) -> None:
    articles = [
        pb.Article(
            title="One", description="first", url="https://example.com/1", pic_url="https://example.com/1.png"
        ),
        pb.Article(title="Two", url="https://example.com/2"),
    ]
    await send(gateway, "team-wecom", pb.Message(news=pb.News(articles=articles)))
    assert only_delivered(gateway, "wecom_robot", "team-wecom") == {
        "msgtype": "news",
        "news": {
            "articles": [
                {
                    "title": "One",
                    "url": "https://example.com/1",
                    "description": "first",
                    "picurl": "https://example.com/1.png",
                },
                {"title": "Two", "url": "https://example.com/2"},
            ]
        },
    }


async def test_wecom_file_and_voice_by_the_robots_media_id(gateway: Gateway) -> None:
    gateway.sandbox.add_robot_media("team-wecom", "media-file-1")
    gateway.sandbox.add_robot_media("team-wecom", "media-voice-1")
    await send(gateway, "team-wecom", pb.Message(file=pb.File(media_id="media-file-1")))
    await send(gateway, "team-wecom", pb.Message(voice=pb.Voice(media_id="media-voice-1")))
    bodies = [r.body for r in gateway.sandbox.delivered("wecom_robot", "team-wecom")]
    assert bodies == [
        {"msgtype": "file", "file": {"media_id": "media-file-1"}},
        {"msgtype": "voice", "voice": {"media_id": "media-voice-1"}},
    ]


async def test_wecom_template_card_passes_through_with_integers_kept(gateway: Gateway) -> None:
    card = struct_pb2.Struct()
    card.update(
        {
            "card_type": "text_notice",
            "main_title": {"title": "Incident", "desc": "p1"},
            "emphasis_content": {"title": "3", "desc": "services down"},
            "jump_list": [{"type": 1, "url": "https://example.com/i", "title": "Open"}],
            "card_action": {"type": 1, "url": "https://example.com/i"},
        }
    )
    await send(gateway, "team-wecom", pb.Message(template_card=pb.TemplateCard(card=card)))
    assert only_delivered(gateway, "wecom_robot", "team-wecom") == {
        "msgtype": "template_card",
        "template_card": {
            "card_type": "text_notice",
            "main_title": {"title": "Incident", "desc": "p1"},
            "emphasis_content": {"title": "3", "desc": "services down"},
            "jump_list": [{"type": 1, "url": "https://example.com/i", "title": "Open"}],
            "card_action": {"type": 1, "url": "https://example.com/i"},
        },
    }


async def test_utf8_text_at_the_byte_limit_is_delivered(gateway: Gateway) -> None:
    content = "警" * (2048 // 3)  # 2046 bytes in UTF-8, under WeCom's 2048
    await send(gateway, "team-wecom", pb.Message(text=pb.Text(content=content)))
    assert only_delivered(gateway, "wecom_robot", "team-wecom")["text"] == {"content": content}
