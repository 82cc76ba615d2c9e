"""One message of each kind for each channel, sent through the gateway's gRPC API.

Pictures are real PNGs uploaded through the gateway, so the page shows them from the sandbox's
own media URLs (nothing outside the machine is reachable).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from google.protobuf import struct_pb2

from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.media_samples import AMR, MP4, PDF


def gradient_png(width: int = 320, height: int = 160) -> bytes:
    """A real PNG with a diagonal blue-to-green gradient: a picture that reads as one."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            t = (x / width + y / height) / 2
            rows += bytes((int(40 + 30 * t), int(110 + 100 * t), int(240 - 120 * t)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


PICTURE = gradient_png()


@dataclass(frozen=True)
class Sent:
    """A message sent: where to, its kind as the vendor names it, and the text to find on the card."""

    account: str
    msgtype: str
    shows: str


async def upload(
    stub: pb_grpc.NotificationServiceStub, account: str, kind: int, filename: str, data: bytes
) -> str:
    async def parts() -> AsyncIterator[pb.UploadMediaRequest]:
        yield pb.UploadMediaRequest(info=pb.MediaInfo(account=account, type=kind, filename=filename))  # type: ignore[arg-type]
        yield pb.UploadMediaRequest(chunk=data)

    response = await stub.UploadMedia(parts(), timeout=10)
    return str(response.media_id)


async def send(
    stub: pb_grpc.NotificationServiceStub, account: str, message: pb.Message, **fields: object
) -> pb.SendResponse:
    request = pb.SendRequest(account=account, message=message, **fields)  # type: ignore[arg-type]
    response: pb.SendResponse = await stub.Send(request, timeout=10)
    assert response.state == pb.MESSAGE_STATE_SENT, response
    return response


def template_card() -> struct_pb2.Struct:
    card = struct_pb2.Struct()
    card.update(
        {
            "card_type": "text_notice",
            "source": {"desc": "Incident bot"},
            "main_title": {"title": "Incident INC-42", "desc": "checkout latency"},
            "emphasis_content": {"title": "3", "desc": "services degraded"},
            "horizontal_content_list": [{"keyname": "Owner", "value": "zhangsan"}],
            "jump_list": [{"type": 1, "url": "https://example.com/inc/42", "title": "Open runbook"}],
            "card_action": {"type": 1, "url": "https://example.com/inc/42"},
        }
    )
    return card


async def send_every_kind(stub: pb_grpc.NotificationServiceStub, sandbox_url: str) -> list[Sent]:
    """Sends one message of every kind each channel takes; returns what the page should show."""
    sent: list[Sent] = []
    app_image = await upload(stub, "corp-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PICTURE)
    picture_url = f"{sandbox_url}/_sandbox/media/corp-app/{app_image}"

    # -- WeCom group robot ------------------------------------------------------------------------
    robot = "team-wecom"
    mentioned = pb.Recipients(user_ids=["zhangsan"], mobiles=["13800000001"])
    await send(stub, robot, pb.Message(text=pb.Text(content="Deploy finished on prod")), recipients=mentioned)
    sent.append(Sent(robot, "text", "Deploy finished on prod"))
    release = (
        "### Release 2.4\n"
        '> build <font color="info">passed</font>, <font color="warning">2 flaky tests</font>\n\n'
        "[changelog](https://example.com/changelog) `v2.4.0`"
    )
    await send(stub, robot, pb.Message(markdown=pb.Markdown(content=release)))
    sent.append(Sent(robot, "markdown", "Release 2.4"))
    table = "| service | state |\n|---|---|\n| api | ok |\n| worker | degraded |\n\n- first\n- second"
    await send(stub, robot, pb.Message(markdown=pb.Markdown(content=table, dialect=pb.Markdown.DIALECT_V2)))
    sent.append(Sent(robot, "markdown_v2", "degraded"))
    await send(stub, robot, pb.Message(image=pb.Image(data=PICTURE)))
    sent.append(Sent(robot, "image", ""))
    articles = [
        pb.Article(
            title="Quarterly report is out",
            description="Read it first",
            url="https://example.com/q",
            pic_url=picture_url,
        ),
        pb.Article(title="Team offsite photos", url="https://example.com/p", pic_url=picture_url),
    ]
    await send(stub, robot, pb.Message(news=pb.News(articles=articles)))
    sent.append(Sent(robot, "news", "Quarterly report is out"))
    robot_file = await upload(stub, robot, pb.MEDIA_TYPE_FILE, "report.pdf", PDF)
    await send(stub, robot, pb.Message(file=pb.File(media_id=robot_file)))
    sent.append(Sent(robot, "file", "report.pdf"))
    robot_voice = await upload(stub, robot, pb.MEDIA_TYPE_VOICE, "standup.amr", AMR)
    await send(stub, robot, pb.Message(voice=pb.Voice(media_id=robot_voice)))
    sent.append(Sent(robot, "voice", "standup.amr"))
    await send(stub, robot, pb.Message(template_card=pb.TemplateCard(card=template_card())))
    sent.append(Sent(robot, "template_card", "Incident INC-42"))

    # -- WeCom application ------------------------------------------------------------------------
    app = "corp-app"
    people = pb.Recipients(user_ids=["zhangsan", "lisi"])
    await send(
        stub, app, pb.Message(text=pb.Text(content="Your leave request was approved")), recipients=people
    )
    sent.append(Sent(app, "text", "Your leave request was approved"))
    await send(
        stub,
        app,
        pb.Message(markdown=pb.Markdown(content='**Payroll** closes <font color="comment">Friday</font>')),
        recipients=people,
    )
    sent.append(Sent(app, "markdown", "Payroll"))
    await send(stub, app, pb.Message(image=pb.Image(media_id=app_image)), recipients=people)
    sent.append(Sent(app, "image", ""))
    voice = await upload(stub, app, pb.MEDIA_TYPE_VOICE, "memo.amr", AMR)
    await send(stub, app, pb.Message(voice=pb.Voice(media_id=voice)), recipients=people)
    sent.append(Sent(app, "voice", "memo.amr"))
    video = await upload(stub, app, pb.MEDIA_TYPE_VIDEO, "demo.mp4", MP4)
    await send(stub, app, pb.Message(video=pb.Video(media_id=video, title="Product demo")), recipients=people)
    sent.append(Sent(app, "video", "Product demo"))
    app_file = await upload(stub, app, pb.MEDIA_TYPE_FILE, "handbook.pdf", PDF)
    await send(stub, app, pb.Message(file=pb.File(media_id=app_file)), recipients=people)
    sent.append(Sent(app, "file", "handbook.pdf"))
    card = pb.TextCard(
        title="Expense claim approved",
        description='<div class="gray">2026-12-02</div><div class="highlight">CNY 1,280.00</div>',
        url="https://example.com/claims/7",
        button_text="Open",
    )
    await send(stub, app, pb.Message(text_card=card), recipients=people)
    sent.append(Sent(app, "textcard", "Expense claim approved"))
    await send(stub, app, pb.Message(news=pb.News(articles=articles[:1])), recipients=people)
    sent.append(Sent(app, "news", "Quarterly report is out"))
    mp = pb.MpArticle(
        title="Security training", thumb_media_id=app_image, content="<p>Read me</p>", digest="Due Friday"
    )
    await send(stub, app, pb.Message(mp_news=pb.MpNews(articles=[mp])), recipients=people)
    sent.append(Sent(app, "mpnews", "Security training"))
    notice = pb.MiniProgramNotice(
        app_id="wx123456",
        page="pages/index",
        title="Meeting booked",
        description="Room 4",
        content_items=[pb.KeyValue(key="When", value="10:00")],
    )
    await send(stub, app, pb.Message(mini_program_notice=notice), recipients=people)
    sent.append(Sent(app, "miniprogram_notice", "Meeting booked"))
    await send(stub, app, pb.Message(template_card=pb.TemplateCard(card=template_card())), recipients=people)
    sent.append(Sent(app, "template_card", "Incident INC-42"))

    # -- DingTalk custom robot --------------------------------------------------------------------
    ding = "ops-dingtalk"
    await send(
        stub,
        ding,
        pb.Message(text=pb.Text(content="Disk almost full on db-1")),
        recipients=pb.Recipients(mobiles=["13800000001"]),
    )
    sent.append(Sent(ding, "text", "Disk almost full on db-1"))
    await send(
        stub,
        ding,
        pb.Message(
            markdown=pb.Markdown(
                title="Build", content="#### Build #812\n- **tests** passed\n- *lint* passed"
            )
        ),
        recipients=pb.Recipients(user_ids=["manager01"]),
    )
    sent.append(Sent(ding, "markdown", "Build #812"))
    link = pb.Link(
        title="Weekly metrics", text="Signups up 12%", url="https://example.com/m", pic_url=picture_url
    )
    await send(stub, ding, pb.Message(link=link))
    sent.append(Sent(ding, "link", "Weekly metrics"))
    single = pb.ActionCard(
        title="Approve release",
        markdown="### Release 2.4\nReady to ship",
        buttons=[pb.ActionButton(title="Review", url="https://example.com/r")],
    )
    await send(stub, ding, pb.Message(action_card=single))
    sent.append(Sent(ding, "actionCard", "Approve release"))
    several = pb.ActionCard(
        title="On-call swap",
        markdown="Swap Friday with **lisi**?",
        buttons=[
            pb.ActionButton(title="Accept", url="https://example.com/a"),
            pb.ActionButton(title="Decline", url="https://example.com/d"),
        ],
        orientation=pb.ActionCard.ORIENTATION_HORIZONTAL,
    )
    await send(stub, ding, pb.Message(action_card=several))
    sent.append(Sent(ding, "actionCard", "On-call swap"))
    feed = pb.FeedCard(
        links=[
            pb.FeedLink(title="Incident review", url="https://example.com/1", pic_url=picture_url),
            pb.FeedLink(title="Capacity plan", url="https://example.com/2", pic_url=picture_url),
        ]
    )
    await send(stub, ding, pb.Message(feed_card=feed))
    sent.append(Sent(ding, "feedCard", "Incident review"))

    # -- DingTalk work notification ---------------------------------------------------------------
    work = "ding-app"
    staff = pb.Recipients(user_ids=["user01", "user02"])
    await send(stub, work, pb.Message(text=pb.Text(content="Timesheets are due today")), recipients=staff)
    sent.append(Sent(work, "text", "Timesheets are due today"))
    await send(
        stub,
        work,
        pb.Message(markdown=pb.Markdown(title="Menu", content="### Lunch menu\n1. noodles\n2. dumplings")),
        recipients=staff,
    )
    sent.append(Sent(work, "markdown", "Lunch menu"))
    work_image = await upload(stub, work, pb.MEDIA_TYPE_IMAGE, "floor.png", PICTURE)
    await send(stub, work, pb.Message(image=pb.Image(media_id=work_image)), recipients=staff)
    sent.append(Sent(work, "image", ""))
    work_voice = await upload(stub, work, pb.MEDIA_TYPE_VOICE, "note.amr", AMR)
    await send(
        stub, work, pb.Message(voice=pb.Voice(media_id=work_voice, duration_seconds=5)), recipients=staff
    )
    sent.append(Sent(work, "voice", "note.amr"))
    work_file = await upload(stub, work, pb.MEDIA_TYPE_FILE, "minutes.pdf", PDF)
    await send(stub, work, pb.Message(file=pb.File(media_id=work_file)), recipients=staff)
    sent.append(Sent(work, "file", "minutes.pdf"))
    await send(stub, work, pb.Message(link=link), recipients=staff)
    sent.append(Sent(work, "link", "Weekly metrics"))
    oa = pb.Oa(
        message_url="https://example.com/oa/1",
        head=pb.OaHead(bgcolor="FF2E7DFF", text="Leave approval"),
        status_bar=pb.OaStatusBar(status_value="Pending", status_bg="FFF0A020"),
        body=pb.OaBody(
            title="Annual leave, 3 days",
            form=[pb.KeyValue(key="From", value="2026-12-20")],
            rich=pb.OaRich(num="3", unit="days"),
            author="wangwu",
        ),
    )
    await send(stub, work, pb.Message(oa=oa), recipients=staff)
    sent.append(Sent(work, "oa", "Annual leave, 3 days"))
    await send(stub, work, pb.Message(action_card=several), recipients=staff)
    sent.append(Sent(work, "action_card", "On-call swap"))
    return sent
