"""Every message kind of both application channels arrives at the vendor as the JSON it documents
(docs/vendors.md, WeCom application messages and DingTalk work notifications), and what the
vendor answers comes back to the caller as it should."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from gateway.sandbox import SandboxServer
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import (
    DINGTALK_AGENT_ID,
    WECOM_AGENT_ID,
    WECOM_CORP_ID,
    WECOM_CORP_SECRET,
    Gateway,
    gateway_config,
    running_gateway,
)
from tests.e2e.app_support import DINGTALK_APP, WECOM_APP, App, refused, sends, upload
from tests.media_samples import AMR, MP4, PDF, PNG

WECOM = "wecom_app"
DINGTALK = "dingtalk_work"
USERS = pb.Recipients(user_ids=["zhangsan"])
DING_USERS = pb.Recipients(user_ids=["user01"])


async def send(gateway: Gateway, account: str, message: pb.Message, **fields: Any) -> pb.SendResponse:
    return await gateway.stub.Send(pb.SendRequest(account=account, message=message, **fields), timeout=10)


def only_delivered(gateway: Gateway, channel: str, name: str) -> dict[str, Any]:
    delivered = gateway.sandbox.delivered(channel, name)
    assert len(delivered) == 1, delivered
    return delivered[0].body


def wecom_body(msgtype: str, content: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"touser": "zhangsan", "agentid": WECOM_AGENT_ID, "msgtype": msgtype, msgtype: content, **fields}


def ding_body(msgtype: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "agent_id": DINGTALK_AGENT_ID,
        "userid_list": "user01",
        "to_all_user": False,
        "msg": {"msgtype": msgtype, msgtype: content},
    }


# -- WeCom application: recipients, options, the answer --------------------------------------------


async def test_wecom_app_text_reaches_users_parties_and_tags_with_every_option(gateway: Gateway) -> None:
    response = await send(
        gateway,
        "corp-app",
        pb.Message(text=pb.Text(content="deploy finished")),
        recipients=pb.Recipients(user_ids=["zhangsan", "lisi"], department_ids=["1", "2"], tag_ids=["1"]),
        options=pb.SendOptions(
            safe=pb.SAFETY_CONFIDENTIAL,
            enable_id_trans=True,
            enable_duplicate_check=True,
            duplicate_check_interval_seconds=600,
        ),
    )

    assert only_delivered(gateway, WECOM, "corp-app") == {
        "touser": "zhangsan|lisi",
        "toparty": "1|2",
        "totag": "1",
        "agentid": WECOM_AGENT_ID,
        "msgtype": "text",
        "text": {"content": "deploy finished"},
        "safe": 1,
        "enable_id_trans": 1,
        "enable_duplicate_check": 1,
        "duplicate_check_interval": 600,
    }
    assert response.state == pb.MESSAGE_STATE_SENT
    assert response.recallable is True
    assert list(response.rejected_recipients) == []
    # vendor_message_id is the msgid WeCom answered: the one the vendor can recall.
    assert list(gateway.sandbox.wecom_apps.get("corp-app").sent) == [response.vendor_message_id]


async def test_wecom_app_message_is_recalled_by_the_msgid_the_vendor_gave(gateway: Gateway) -> None:
    response = await send(gateway, "corp-app", pb.Message(text=pb.Text(content="oops")), recipients=USERS)
    recalled = await gateway.stub.Recall(pb.RecallRequest(message_id=response.message_id), timeout=10)
    assert recalled.state == pb.MESSAGE_STATE_RECALLED
    assert gateway.sandbox.recalled("corp-app") == [response.vendor_message_id]


async def test_wecom_app_shareable_safety_is_sent_as_zero_and_unset_options_are_left_out(
    gateway: Gateway,
) -> None:
    await send(
        gateway,
        "corp-app",
        pb.Message(text=pb.Text(content="x")),
        recipients=USERS,
        options=pb.SendOptions(safe=pb.SAFETY_SHAREABLE),
    )
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body("text", {"content": "x"}, safe=0)


async def test_wecom_app_to_everyone_is_touser_all_without_parties_or_tags(gateway: Gateway) -> None:
    await send(
        gateway,
        "corp-app",
        pb.Message(text=pb.Text(content="all hands")),
        recipients=pb.Recipients(all=True, department_ids=["1"]),
    )
    assert only_delivered(gateway, WECOM, "corp-app") == {
        "touser": "@all",
        "agentid": WECOM_AGENT_ID,
        "msgtype": "text",
        "text": {"content": "all hands"},
    }


async def test_wecom_app_partly_invalid_recipients_are_delivered_and_the_rest_reported(
    sandbox: SandboxServer,
) -> None:
    # Replacing the app (before any token exists) gives it an unlicensed member.
    sandbox.state.add_wecom_app(
        "corp-app", WECOM_CORP_ID, WECOM_CORP_SECRET, WECOM_AGENT_ID, unlicensed=["zhaoliu"]
    )
    async with running_gateway(gateway_config(sandbox.url), sandbox.state) as gateway:
        response = await send(
            gateway,
            "corp-app",
            pb.Message(text=pb.Text(content="x")),
            recipients=pb.Recipients(
                user_ids=["zhangsan", "Ghost", "zhaoliu"], department_ids=["1", "9"], tag_ids=["7"]
            ),
        )

    assert response.state == pb.MESSAGE_STATE_SENT
    assert len(sandbox.state.delivered(WECOM, "corp-app")) == 1
    rejected = {(r.kind, r.id, r.reason) for r in response.rejected_recipients}
    assert rejected == {
        (pb.RECIPIENT_KIND_USER, "ghost", "invalid"),  # WeCom reports user ids lower-cased
        (pb.RECIPIENT_KIND_DEPARTMENT, "9", "invalid"),
        (pb.RECIPIENT_KIND_TAG, "7", "invalid"),
        (pb.RECIPIENT_KIND_USER, "zhaoliu", "unlicensed"),
    }


async def test_wecom_app_with_no_valid_recipient_is_invalid_argument_with_the_vendor_errcode(
    gateway: Gateway,
) -> None:
    error = await refused(
        send(
            gateway,
            "corp-app",
            pb.Message(text=pb.Text(content="x")),
            recipients=pb.Recipients(user_ids=["ghost"], department_ids=["9"]),
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.error_info is not None
    assert error.error_info.metadata["vendor_errcode"] == "81013"
    assert error.error_info.metadata["account"] == "corp-app"
    assert gateway.sandbox.delivered() == []


# -- WeCom application: every message kind -----------------------------------------------------------


async def test_wecom_app_image_by_media_id(gateway: Gateway) -> None:
    media_id = await upload(gateway.stub, "corp-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PNG)
    await send(gateway, "corp-app", pb.Message(image=pb.Image(media_id=media_id)), recipients=USERS)
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body("image", {"media_id": media_id})


async def test_wecom_app_image_bytes_are_uploaded_first_and_sent_by_media_id(gateway: Gateway) -> None:
    await send(gateway, "corp-app", pb.Message(image=pb.Image(data=PNG)), recipients=USERS)
    body = only_delivered(gateway, WECOM, "corp-app")
    (media_id,) = gateway.sandbox.media("corp-app")
    assert body == wecom_body("image", {"media_id": media_id})


async def test_wecom_app_voice(gateway: Gateway) -> None:
    media_id = await upload(gateway.stub, "corp-app", pb.MEDIA_TYPE_VOICE, "memo.amr", AMR)
    await send(gateway, "corp-app", pb.Message(voice=pb.Voice(media_id=media_id)), recipients=USERS)
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body("voice", {"media_id": media_id})


async def test_wecom_app_video_with_title_and_description(gateway: Gateway) -> None:
    media_id = await upload(gateway.stub, "corp-app", pb.MEDIA_TYPE_VIDEO, "demo.mp4", MP4)
    await send(
        gateway,
        "corp-app",
        pb.Message(video=pb.Video(media_id=media_id, title="Demo", description="Release 1.2")),
        recipients=USERS,
    )
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body(
        "video", {"media_id": media_id, "title": "Demo", "description": "Release 1.2"}
    )


async def test_wecom_app_file(gateway: Gateway) -> None:
    media_id = await upload(gateway.stub, "corp-app", pb.MEDIA_TYPE_FILE, "report.pdf", PDF)
    await send(gateway, "corp-app", pb.Message(file=pb.File(media_id=media_id)), recipients=USERS)
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body("file", {"media_id": media_id})


async def test_wecom_app_text_card(gateway: Gateway) -> None:
    card = pb.TextCard(
        title="Leave approved", description="3 days", url="https://example.com/l", button_text="更多"
    )
    await send(gateway, "corp-app", pb.Message(text_card=card), recipients=USERS)
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body(
        "textcard",
        {
            "title": "Leave approved",
            "description": "3 days",
            "url": "https://example.com/l",
            "btntxt": "更多",
        },
    )


async def test_wecom_app_news_with_a_url_article_and_a_mini_program_article(gateway: Gateway) -> None:
    articles = [
        pb.Article(
            title="Weekly",
            description="numbers",
            url="https://example.com/w",
            pic_url="https://example.com/w.png",
        ),
        pb.Article(title="Open in app", app_id="wx0123456789", page_path="pages/index"),
    ]
    await send(gateway, "corp-app", pb.Message(news=pb.News(articles=articles)), recipients=USERS)
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body(
        "news",
        {
            "articles": [
                {
                    "title": "Weekly",
                    "description": "numbers",
                    "url": "https://example.com/w",
                    "picurl": "https://example.com/w.png",
                },
                {"title": "Open in app", "appid": "wx0123456789", "pagepath": "pages/index"},
            ]
        },
    )


async def test_wecom_app_mp_news_may_be_company_only(gateway: Gateway) -> None:
    thumb = await upload(gateway.stub, "corp-app", pb.MEDIA_TYPE_IMAGE, "cover.png", PNG)
    article = pb.MpArticle(
        title="Policy",
        thumb_media_id=thumb,
        author="HR",
        content_source_url="https://example.com/p",
        content="<p>New policy</p>",
        digest="what changes",
    )
    await send(
        gateway,
        "corp-app",
        pb.Message(mp_news=pb.MpNews(articles=[article])),
        recipients=USERS,
        options=pb.SendOptions(safe=pb.SAFETY_COMPANY_ONLY),
    )
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body(
        "mpnews",
        {
            "articles": [
                {
                    "title": "Policy",
                    "thumb_media_id": thumb,
                    "author": "HR",
                    "content_source_url": "https://example.com/p",
                    "content": "<p>New policy</p>",
                    "digest": "what changes",
                }
            ]
        },
        safe=2,
    )


async def test_wecom_app_markdown(gateway: Gateway) -> None:
    content = '**Alert** <font color="warning">disk 91%</font>'
    await send(gateway, "corp-app", pb.Message(markdown=pb.Markdown(content=content)), recipients=USERS)
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body("markdown", {"content": content})


async def test_wecom_app_mini_program_notice(gateway: Gateway) -> None:
    notice = pb.MiniProgramNotice(
        app_id="wx0123456789",
        page="pages/meeting?id=7",
        title="Meeting",
        description="Today 16:00",
        emphasis_first_item=True,
        content_items=[pb.KeyValue(key="Room", value="A-301"), pb.KeyValue(key="Host", value="lisi")],
    )
    await send(gateway, "corp-app", pb.Message(mini_program_notice=notice), recipients=USERS)
    assert only_delivered(gateway, WECOM, "corp-app") == wecom_body(
        "miniprogram_notice",
        {
            "appid": "wx0123456789",
            "page": "pages/meeting?id=7",
            "title": "Meeting",
            "description": "Today 16:00",
            "emphasis_first_item": True,
            "content_item": [{"key": "Room", "value": "A-301"}, {"key": "Host", "value": "lisi"}],
        },
    )


async def test_wecom_app_template_card_passes_through_with_integers_kept(gateway: Gateway) -> None:
    card = {
        "card_type": "text_notice",
        "source": {"desc": "CI", "desc_color": 1},
        "main_title": {"title": "Build red", "desc": "main"},
        "horizontal_content_list": [
            {"keyname": "failures", "value": "3", "type": 1, "url": "https://example.com/f"}
        ],
        "card_action": {"type": 1, "url": "https://example.com/b"},
    }
    struct = struct_pb2.Struct()
    struct.update(card)
    await send(gateway, "corp-app", pb.Message(template_card=pb.TemplateCard(card=struct)), recipients=USERS)

    body = only_delivered(gateway, WECOM, "corp-app")
    assert body == wecom_body("template_card", card)
    # 1 == 1.0 in Python: check the wire type too, WeCom wants integers.
    assert type(body["template_card"]["card_action"]["type"]) is int
    assert type(body["template_card"]["source"]["desc_color"]) is int


# -- DingTalk work notification ---------------------------------------------------------------------


async def test_dingtalk_work_text_to_users_and_departments_is_accepted_with_the_task_id(
    gateway: Gateway,
) -> None:
    response = await send(
        gateway,
        "ding-app",
        pb.Message(text=pb.Text(content="deploy finished")),
        recipients=pb.Recipients(user_ids=["manager01", "user01"], department_ids=["1", "2"]),
    )

    assert only_delivered(gateway, DINGTALK, "ding-app") == {
        "agent_id": DINGTALK_AGENT_ID,
        "userid_list": "manager01,user01",
        "dept_id_list": "1,2",
        "to_all_user": False,
        "msg": {"msgtype": "text", "text": {"content": "deploy finished"}},
    }
    # A task_id means "the vendor accepted it": SENT, and DELIVERED once getsendresult says so.
    assert response.state == pb.MESSAGE_STATE_SENT
    assert response.recallable is True
    assert list(gateway.sandbox.dingtalk_apps.get("ding-app").tasks) == [int(response.vendor_message_id)]


async def test_dingtalk_work_message_is_recalled_by_its_task_id(gateway: Gateway) -> None:
    response = await send(
        gateway, "ding-app", pb.Message(text=pb.Text(content="oops")), recipients=DING_USERS
    )
    recalled = await gateway.stub.Recall(pb.RecallRequest(message_id=response.message_id), timeout=10)
    assert recalled.state == pb.MESSAGE_STATE_RECALLED
    assert gateway.sandbox.recalled("ding-app") == [response.vendor_message_id]


async def test_dingtalk_work_to_everyone_sets_to_all_user(gateway: Gateway) -> None:
    await send(
        gateway, "ding-app", pb.Message(text=pb.Text(content="all hands")), recipients=pb.Recipients(all=True)
    )
    assert only_delivered(gateway, DINGTALK, "ding-app") == {
        "agent_id": DINGTALK_AGENT_ID,
        "to_all_user": True,
        "msg": {"msgtype": "text", "text": {"content": "all hands"}},
    }


async def test_dingtalk_work_image(gateway: Gateway) -> None:
    media_id = await upload(gateway.stub, "ding-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PNG)
    await send(gateway, "ding-app", pb.Message(image=pb.Image(media_id=media_id)), recipients=DING_USERS)
    assert only_delivered(gateway, DINGTALK, "ding-app") == ding_body("image", {"media_id": media_id})


async def test_dingtalk_work_image_bytes_are_uploaded_first_and_sent_by_media_id(gateway: Gateway) -> None:
    await send(gateway, "ding-app", pb.Message(image=pb.Image(data=PNG)), recipients=DING_USERS)
    body = only_delivered(gateway, DINGTALK, "ding-app")
    (media_id,) = gateway.sandbox.media("ding-app")
    assert body == ding_body("image", {"media_id": media_id})


async def test_dingtalk_work_voice_carries_its_duration(gateway: Gateway) -> None:
    media_id = await upload(gateway.stub, "ding-app", pb.MEDIA_TYPE_VOICE, "memo.amr", AMR)
    await send(
        gateway,
        "ding-app",
        pb.Message(voice=pb.Voice(media_id=media_id, duration_seconds=12)),
        recipients=DING_USERS,
    )
    # DingTalk's documented examples give the duration as a string of digits.
    assert only_delivered(gateway, DINGTALK, "ding-app") == ding_body(
        "voice", {"media_id": media_id, "duration": "12"}
    )


async def test_dingtalk_work_file(gateway: Gateway) -> None:
    media_id = await upload(gateway.stub, "ding-app", pb.MEDIA_TYPE_FILE, "report.pdf", PDF)
    await send(gateway, "ding-app", pb.Message(file=pb.File(media_id=media_id)), recipients=DING_USERS)
    assert only_delivered(gateway, DINGTALK, "ding-app") == ding_body("file", {"media_id": media_id})


async def test_dingtalk_work_link(gateway: Gateway) -> None:
    link = pb.Link(
        title="Report",
        text="Weekly numbers",
        url="https://example.com/r",
        pic_url="https://example.com/p.png",
    )
    await send(gateway, "ding-app", pb.Message(link=link), recipients=DING_USERS)
    assert only_delivered(gateway, DINGTALK, "ding-app") == ding_body(
        "link",
        {
            "messageUrl": "https://example.com/r",
            "picUrl": "https://example.com/p.png",
            "title": "Report",
            "text": "Weekly numbers",
        },
    )


async def test_dingtalk_work_markdown(gateway: Gateway) -> None:
    await send(
        gateway,
        "ding-app",
        pb.Message(markdown=pb.Markdown(title="Deploy", content="### Deploy\n- **api** ok")),
        recipients=DING_USERS,
    )
    assert only_delivered(gateway, DINGTALK, "ding-app") == ding_body(
        "markdown", {"title": "Deploy", "text": "### Deploy\n- **api** ok"}
    )


async def test_dingtalk_work_oa_with_every_part(gateway: Gateway) -> None:
    image = await upload(gateway.stub, "ding-app", pb.MEDIA_TYPE_IMAGE, "invoice.png", PNG)
    oa = pb.Oa(
        message_url="dingtalk://dingtalkclient/page/link?url=https%3A%2F%2Fexample.com",
        pc_message_url="https://example.com/pc",
        head=pb.OaHead(bgcolor="FFBBBBBB", text="Expense"),
        status_bar=pb.OaStatusBar(status_value="Approved", status_bg="0xFF78C06E"),
        body=pb.OaBody(
            title="Trip to Hangzhou",
            form=[pb.KeyValue(key="Amount:", value="1200"), pb.KeyValue(key="Days:", value="3")],
            rich=pb.OaRich(num="1200", unit="CNY"),
            content="Hotel and train",
            image=image,
            file_count="2",
            author="lisi",
        ),
    )
    await send(gateway, "ding-app", pb.Message(oa=oa), recipients=DING_USERS)
    assert only_delivered(gateway, DINGTALK, "ding-app") == ding_body(
        "oa",
        {
            "message_url": "dingtalk://dingtalkclient/page/link?url=https%3A%2F%2Fexample.com",
            "pc_message_url": "https://example.com/pc",
            "head": {"bgcolor": "FFBBBBBB", "text": "Expense"},
            "status_bar": {"status_value": "Approved", "status_bg": "0xFF78C06E"},
            "body": {
                "title": "Trip to Hangzhou",
                "form": [{"key": "Amount:", "value": "1200"}, {"key": "Days:", "value": "3"}],
                "rich": {"num": "1200", "unit": "CNY"},
                "content": "Hotel and train",
                "image": image,
                "file_count": "2",
                "author": "lisi",
            },
        },
    )


async def test_dingtalk_work_action_card_with_one_button_uses_the_single_form(gateway: Gateway) -> None:
    card = pb.ActionCard(
        title="Approve?",
        markdown="Release **1.2**",
        buttons=[pb.ActionButton(title="Open", url="https://example.com/a")],
    )
    await send(gateway, "ding-app", pb.Message(action_card=card), recipients=DING_USERS)
    assert only_delivered(gateway, DINGTALK, "ding-app") == ding_body(
        "action_card",
        {
            "title": "Approve?",
            "markdown": "Release **1.2**",
            "single_title": "Open",
            "single_url": "https://example.com/a",
        },
    )


async def test_dingtalk_work_action_card_with_several_buttons_uses_the_button_list(gateway: Gateway) -> None:
    card = pb.ActionCard(
        title="Approve?",
        markdown="Release 1.2",
        buttons=[
            pb.ActionButton(title="Yes", url="https://example.com/y"),
            pb.ActionButton(title="No", url="https://example.com/n"),
        ],
        orientation=pb.ActionCard.ORIENTATION_HORIZONTAL,
    )
    await send(gateway, "ding-app", pb.Message(action_card=card), recipients=DING_USERS)
    assert only_delivered(gateway, DINGTALK, "ding-app") == ding_body(
        "action_card",
        {
            "title": "Approve?",
            "markdown": "Release 1.2",
            "btn_orientation": "1",
            "btn_json_list": [
                {"title": "Yes", "action_url": "https://example.com/y"},
                {"title": "No", "action_url": "https://example.com/n"},
            ],
        },
    )


# -- refused by the gateway before any vendor call --------------------------------------------------


def text(content: str = "x") -> pb.Message:
    return pb.Message(text=pb.Text(content=content))


REFUSALS = {
    "wecom app without recipients": (pb.SendRequest(account="corp-app", message=text()), "recipients"),
    "dingtalk work without recipients": (pb.SendRequest(account="ding-app", message=text()), "recipients"),
    "wecom app to mobiles": (
        pb.SendRequest(account="corp-app", message=text(), recipients=pb.Recipients(mobiles=["13800000001"])),
        "recipients.mobiles",
    ),
    "dingtalk work to mobiles": (
        pb.SendRequest(
            account="ding-app",
            message=text(),
            recipients=pb.Recipients(user_ids=["user01"], mobiles=["13800000001"]),
        ),
        "recipients.mobiles",
    ),
    "nine news articles": (
        pb.SendRequest(
            account="corp-app",
            recipients=USERS,
            message=pb.Message(
                news=pb.News(
                    articles=[pb.Article(title=f"t{i}", url=f"https://example.com/{i}") for i in range(9)]
                )
            ),
        ),
        "message.news.articles",
    ),
    "text card without description": (
        pb.SendRequest(
            account="corp-app",
            recipients=USERS,
            message=pb.Message(text_card=pb.TextCard(title="t", url="https://example.com")),
        ),
        "message.text_card.description",
    ),
    "company-only safety on text": (
        pb.SendRequest(
            account="corp-app",
            recipients=USERS,
            message=text(),
            options=pb.SendOptions(safe=pb.SAFETY_COMPANY_ONLY),
        ),
        "options.safe",
    ),
    "duplicate check window over four hours": (
        pb.SendRequest(
            account="corp-app",
            recipients=USERS,
            message=text(),
            options=pb.SendOptions(enable_duplicate_check=True, duplicate_check_interval_seconds=14401),
        ),
        "options.duplicate_check_interval_seconds",
    ),
    "dingtalk voice without duration": (
        pb.SendRequest(
            account="ding-app",
            recipients=DING_USERS,
            message=pb.Message(voice=pb.Voice(media_id="@lADPmedia")),
        ),
        "message.voice.duration_seconds",
    ),
    "dingtalk voice of a minute": (
        pb.SendRequest(
            account="ding-app",
            recipients=DING_USERS,
            message=pb.Message(voice=pb.Voice(media_id="@lADPmedia", duration_seconds=60)),
        ),
        "message.voice.duration_seconds",
    ),
    # WeCom would truncate it silently: the caller must hear about it instead.
    "wecom app text over 2048 bytes": (
        pb.SendRequest(account="corp-app", recipients=USERS, message=text("警" * 683)),
        "message.text.content",
    ),
    "wecom app markdown_v2": (
        pb.SendRequest(
            account="corp-app",
            recipients=USERS,
            message=pb.Message(markdown=pb.Markdown(content="x", dialect=pb.Markdown.DIALECT_V2)),
        ),
        "message.markdown.dialect",
    ),
    "wecom app 1001 users": (
        pb.SendRequest(
            account="corp-app",
            recipients=pb.Recipients(user_ids=[f"u{i}" for i in range(1001)]),
            message=text(),
        ),
        "recipients.user_ids",
    ),
    "wecom app 101 departments": (
        pb.SendRequest(
            account="corp-app",
            recipients=pb.Recipients(department_ids=[str(i) for i in range(101)]),
            message=text(),
        ),
        "recipients.department_ids",
    ),
    "dingtalk work to tags": (
        pb.SendRequest(account="ding-app", recipients=pb.Recipients(tag_ids=["1"]), message=text()),
        "recipients.tag_ids",
    ),
}


@pytest.mark.parametrize(("request_", "field"), REFUSALS.values(), ids=REFUSALS.keys())
async def test_requests_the_vendor_would_refuse_are_invalid_before_any_vendor_call(
    gateway: Gateway, request_: pb.SendRequest, field: str
) -> None:
    error = await refused(gateway.stub.Send(request_, timeout=10))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.violations, error.violations
    assert gateway.sandbox.received() == [], "not even a gettoken"


# -- vendor refusals --------------------------------------------------------------------------------

RATE_LIMITED = grpc.StatusCode.RESOURCE_EXHAUSTED
VENDOR_ANSWERS = [
    (WECOM_APP, 60020, grpc.StatusCode.PERMISSION_DENIED),  # caller IP not trusted
    (WECOM_APP, 40056, grpc.StatusCode.FAILED_PRECONDITION),  # agentid wrong: configuration
    (WECOM_APP, 45009, RATE_LIMITED),
    (WECOM_APP, 45033, RATE_LIMITED),
    (WECOM_APP, 48002, grpc.StatusCode.PERMISSION_DENIED),
    (WECOM_APP, 60011, grpc.StatusCode.PERMISSION_DENIED),
    (DINGTALK_APP, 60020, grpc.StatusCode.PERMISSION_DENIED),
    (DINGTALK_APP, 40056, grpc.StatusCode.FAILED_PRECONDITION),
    (DINGTALK_APP, 45009, RATE_LIMITED),
    (DINGTALK_APP, 90018, RATE_LIMITED),
    (DINGTALK_APP, 60011, grpc.StatusCode.PERMISSION_DENIED),
]


@pytest.mark.parametrize(
    ("app", "errcode", "status"), VENDOR_ANSWERS, ids=[f"{a.channel}-{c}" for a, c, _ in VENDOR_ANSWERS]
)
async def test_vendor_errcodes_map_to_the_status_a_caller_can_act_on(
    gateway: Gateway, app: App, errcode: int, status: grpc.StatusCode
) -> None:
    gateway.sandbox.inject_fault(app.channel, app.account, errcode=errcode, path=app.send_path)
    error = await refused(send(gateway, app.account, text(), recipients=app.recipients))

    assert error.code == status
    assert error.error_info is not None
    assert error.error_info.metadata["vendor_errcode"] == str(errcode)
    assert error.error_info.metadata["account"] == app.account
    if status == RATE_LIMITED:
        assert error.retry_delay is not None and error.retry_delay > 0
    assert len(sends(gateway.sandbox, app)) == 1, "a refusal that is not 'busy' is not retried"
    assert gateway.sandbox.delivered() == []


async def test_an_account_configured_with_another_apps_agent_id_is_a_configuration_error(
    sandbox: SandboxServer,
) -> None:
    wrong_agent = f"""
        wrong-agent:
          channel: wecom_app
          corp_id: {WECOM_CORP_ID}
          corp_secret: {WECOM_CORP_SECRET}
          agent_id: 1000999
          base_url: {sandbox.url}
        """
    async with running_gateway(
        gateway_config(sandbox.url, extra_accounts=wrong_agent), sandbox.state
    ) as gateway:
        error = await refused(send(gateway, "wrong-agent", text(), recipients=USERS))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "wrong-agent" in error.message
    assert error.error_info is not None and error.error_info.metadata["vendor_errcode"] == "40056"
