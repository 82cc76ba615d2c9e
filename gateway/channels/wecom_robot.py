"""WeCom group robot (docs/vendors.md, WeCom group robot).

The webhook key is the whole credential (no access token). Images travel inline as base64 plus
the md5 of the raw bytes; files and voice need a media_id from the robot's own upload.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from pydantic import Field, SecretStr

from gateway.channels import checks
from gateway.channels.attempts import AttemptLog
from gateway.channels.base import ChannelAdapter
from gateway.channels.deliveries import Delivery, MediaUpload, Outgoing, UploadedMedia
from gateway.channels.error_table import ErrorTable
from gateway.channels.media_rules import MB, MediaRule, uploaded_at
from gateway.channels.settings import AccountSettings
from gateway.channels.template_card import card_to_json
from gateway.errors import VendorOutcome, Violation
from gateway.store.rate_limits import RateLimit
from generated.notify.v1 import notification_service_pb2 as pb

VENDOR = "WeCom robot"
TEXT_LIMIT = 2048  # bytes
MARKDOWN_LIMIT = 4096  # bytes, markdown and markdown_v2
IMAGE_LIMIT = 2 * 1024 * 1024  # raw bytes before base64
CARD_TYPES = frozenset({"text_notice", "news_notice"})
MEDIA_LIFETIME = 3 * 86400.0  # a media_id works for 3 days, for this robot only


class WeComRobotSettings(AccountSettings):
    key: SecretStr = Field(min_length=1)


class WeComRobot(ChannelAdapter):
    channel = "wecom_robot"
    Settings = WeComRobotSettings
    vendor_name = VENDOR
    default_base_url = "https://qyapi.weixin.qq.com"
    kinds = frozenset({"text", "markdown", "image", "news", "file", "voice", "template_card"})
    # 20 messages a minute per robot; a second of margin for the trip to the vendor.
    default_rate_limit = RateLimit(20, 61.0)
    errors = ErrorTable(
        {
            -1: VendorOutcome.RETRY,
            93000: VendorOutcome.CREDENTIAL_REVOKED,
            40058: VendorOutcome.INVALID_REQUEST,
            40008: VendorOutcome.INVALID_REQUEST,
            40035: VendorOutcome.INVALID_REQUEST,
            40005: VendorOutcome.INVALID_REQUEST,
            40009: VendorOutcome.INVALID_REQUEST,
            40007: VendorOutcome.INVALID_REQUEST,
            44004: VendorOutcome.INVALID_REQUEST,
            45002: VendorOutcome.INVALID_REQUEST,
            45008: VendorOutcome.INVALID_REQUEST,
            # upload_media: bad type, bad size, too large
            # (docs/vendors.md, WeCom application messages and WeCom group robot)
            40004: VendorOutcome.INVALID_REQUEST,
            40006: VendorOutcome.INVALID_REQUEST,
            40011: VendorOutcome.INVALID_REQUEST,
            45001: VendorOutcome.INVALID_REQUEST,
            45009: VendorOutcome.RATE_LIMITED,
            45033: VendorOutcome.RATE_LIMITED,
            60020: VendorOutcome.PERMISSION,
        },
        rate_limit_retry_after=60.0,  # 20 messages a minute per robot
    )

    media = {
        pb.MEDIA_TYPE_FILE: MediaRule(20 * MB, frozenset(), "WeCom robot files"),
        pb.MEDIA_TYPE_VOICE: MediaRule(2 * MB, frozenset({"amr"}), "WeCom robot voice clips"),
    }

    settings: WeComRobotSettings

    def prepare(self, request: pb.SendRequest, message_id: str) -> Outgoing:
        message, recipients = request.message, request.recipients
        kind = message.WhichOneof("kind") or ""
        violations = checks.robot_recipients(
            recipients,
            VENDOR,
            mentions_allowed=kind == "text",
            kinds="text messages (write <@userid> inside markdown instead)",
        )
        body: dict[str, Any]
        if kind == "text":
            content = message.text.content
            violations += checks.required("message.text.content", content)
            violations += checks.max_bytes("message.text.content", content, TEXT_LIMIT, VENDOR)
            text: dict[str, Any] = {"content": content}
            mentioned = [*recipients.user_ids, *(["@all"] if recipients.all else [])]
            if mentioned:
                text["mentioned_list"] = mentioned
            if recipients.mobiles:
                text["mentioned_mobile_list"] = list(recipients.mobiles)
            body = {"msgtype": "text", "text": text}
        elif kind == "markdown":
            md = message.markdown
            msgtype = "markdown_v2" if md.dialect == pb.Markdown.DIALECT_V2 else "markdown"
            violations += checks.required("message.markdown.content", md.content)
            violations += checks.max_bytes("message.markdown.content", md.content, MARKDOWN_LIMIT, VENDOR)
            body = {"msgtype": msgtype, msgtype: {"content": md.content}}
        elif kind == "image":
            violations_image, image = _image(message.image)
            violations += violations_image
            body = {"msgtype": "image", "image": image}
        elif kind == "news":
            articles = message.news.articles
            violations += checks.count_between("message.news.articles", articles, 1, 8, VENDOR)
            for i, article in enumerate(articles):
                violations += checks.required(f"message.news.articles[{i}].title", article.title)
                violations += checks.required(f"message.news.articles[{i}].url", article.url)
                for name in ("app_id", "page_path"):
                    violations += checks.not_for(
                        f"message.news.articles[{i}].{name}",
                        bool(getattr(article, name)),
                        "mini-program articles are for WeCom application messages, not robots",
                    )
            body = {"msgtype": "news", "news": {"articles": [_article(a) for a in articles]}}
        elif kind in ("file", "voice"):
            media_id = getattr(message, kind).media_id
            violations += checks.required(
                f"message.{kind}.media_id", media_id, "is required: upload the file to this robot first"
            )
            if kind == "voice":
                violations += checks.not_for(
                    "message.voice.duration_seconds",
                    message.voice.duration_seconds != 0,
                    "the WeCom robot takes no duration; it reads it from the media",
                )
            body = {"msgtype": kind, kind: {"media_id": media_id}}
        elif kind == "template_card":
            card, found = card_to_json(message.template_card)
            violations += found
            card_type = card.get("card_type")
            if not isinstance(card_type, str) or card_type not in CARD_TYPES:
                violations.append(
                    Violation(
                        "message.template_card.card.card_type",
                        f"is {card_type!r}; the WeCom robot takes {', '.join(sorted(CARD_TYPES))}",
                    )
                )
            body = {"msgtype": "template_card", "template_card": card}
        else:
            raise self.unsupported(kind)
        self.raise_violations(violations)
        return Outgoing(kind, body)

    async def deliver(
        self, outgoing: Outgoing, *, deadline: float | None, attempts: AttemptLog | None = None
    ) -> Delivery:
        params = {"key": self.settings.key.get_secret_value()}
        await self.call(
            "POST",
            "/cgi-bin/webhook/send",
            params=params,
            json_body=outgoing.payload,
            deadline=deadline,
            attempts=attempts,
        )
        return Delivery(state=pb.MESSAGE_STATE_SENT)

    async def upload(self, media: MediaUpload, *, deadline: float | None) -> UploadedMedia:
        params = {"key": self.settings.key.get_secret_value()}
        answer = await self.upload_file("/cgi-bin/webhook/upload_media", params, media, deadline=deadline)
        return UploadedMedia(str(answer["media_id"]), uploaded_at(answer) + MEDIA_LIFETIME)


def _article(article: pb.Article) -> dict[str, str]:
    out = {"title": article.title, "url": article.url}
    if article.description:
        out["description"] = article.description
    if article.pic_url:
        out["picurl"] = article.pic_url
    return out


def _image(image: pb.Image) -> tuple[list[Violation], dict[str, str]]:
    if image.WhichOneof("source") != "data":
        why = "the WeCom robot takes images inline: send the bytes in data, not a media_id"
        return [Violation("message.image.data", why)], {}
    data = image.data
    violations = checks.required("message.image.data", data)
    if len(data) > IMAGE_LIMIT:
        violations.append(
            Violation(
                "message.image.data", f"is {len(data)} bytes; {VENDOR} takes images up to {IMAGE_LIMIT}"
            )
        )
    if data and not is_jpeg_or_png(data):
        violations.append(
            Violation("message.image.data", f"is not a JPG or PNG image; {VENDOR} takes only those")
        )
    # md5 of the raw bytes, base64 of the same bytes (docs/vendors.md, WeCom group robot).
    return violations, {"base64": base64.b64encode(data).decode(), "md5": hashlib.md5(data).hexdigest()}


def is_jpeg_or_png(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")
