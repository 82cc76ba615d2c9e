"""WeCom application messages (docs/vendors.md, WeCom application messages).

Calls carry an access token from ``/cgi-bin/gettoken`` (corpid + corpsecret), kept by the shared
TokenManager. Recipients are ``|``-joined ids or ``@all``; a send that reaches some recipients and
not others succeeds and lists the others (invaliduser, invalidparty, invalidtag, unlicenseduser).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field, SecretStr

from gateway.channels import checks
from gateway.channels.attempts import AttemptLog
from gateway.channels.base import ChannelAdapter
from gateway.channels.deliveries import Delivery, MediaUpload, Outgoing, Rejected, UploadedMedia
from gateway.channels.error_table import ErrorTable
from gateway.channels.media_rules import MB, MediaRule, image_upload_name, uploaded_at
from gateway.channels.recall_errors import recall_refused
from gateway.channels.settings import AccountSettings
from gateway.channels.template_card import card_to_json
from gateway.errors import VendorError, VendorOutcome, Violation
from generated.notify.v1 import notification_service_pb2 as pb

VENDOR = "WeCom app"
MEDIA_LIFETIME = 3 * 86400.0  # a media_id works for 3 days
TEXT_LIMIT = 2048  # bytes, text and markdown
USER_LIMIT = 1000
PARTY_TAG_LIMIT = 100
CARD_TYPES = {
    "text_notice": ("card_action",),
    "news_notice": ("card_image", "image_text_area"),
    "button_interaction": ("task_id",),
    "vote_interaction": ("task_id",),
    "multiple_interaction": ("task_id",),
}
_SAFE = {
    pb.SAFETY_UNSPECIFIED: None,
    pb.SAFETY_SHAREABLE: 0,
    pb.SAFETY_CONFIDENTIAL: 1,
    pb.SAFETY_COMPANY_ONLY: 2,
}


class WeComAppSettings(AccountSettings):
    corp_id: str = Field(min_length=1)
    corp_secret: SecretStr = Field(min_length=1)
    agent_id: int = Field(ge=0)


class WeComApp(ChannelAdapter):
    channel = "wecom_app"
    Settings = WeComAppSettings
    vendor_name = VENDOR
    default_base_url = "https://qyapi.weixin.qq.com"
    uses_token = True
    recallable = True
    kinds = frozenset(
        {
            "text",
            "image",
            "voice",
            "video",
            "file",
            "text_card",
            "news",
            "mp_news",
            "markdown",
            "mini_program_notice",
            "template_card",
        }
    )
    errors = ErrorTable(
        {
            -1: VendorOutcome.RETRY,
            40014: VendorOutcome.TOKEN_INVALID,
            42001: VendorOutcome.TOKEN_INVALID,
            41001: VendorOutcome.TOKEN_INVALID,
            40001: VendorOutcome.TOKEN_INVALID,  # once; gettoken answering it again is a wrong secret
            40013: VendorOutcome.CONFIGURATION,
            40056: VendorOutcome.CONFIGURATION,
            **dict.fromkeys(
                (40003, 40031, 40032, 40008, 40007, 40004, 40005, 40006, 40009, 40011, 40035, 40058),
                VendorOutcome.INVALID_REQUEST,
            ),
            **dict.fromkeys(
                (41033, 44004, 45002, 45008, 45001, 40074, 81013, 82001, 82002, 82003),
                VendorOutcome.INVALID_REQUEST,
            ),
            45009: VendorOutcome.RATE_LIMITED,
            45033: VendorOutcome.RATE_LIMITED,
            **dict.fromkeys((48002, 60011, 50002, 50003, 60020), VendorOutcome.PERMISSION),
        },
        rate_limit_retry_after=60.0,
    )

    media = {
        pb.MEDIA_TYPE_IMAGE: MediaRule(10 * MB, frozenset({"jpg", "jpeg", "png"}), "WeCom app images"),
        pb.MEDIA_TYPE_VOICE: MediaRule(2 * MB, frozenset({"amr"}), "WeCom app voice clips"),
        pb.MEDIA_TYPE_VIDEO: MediaRule(10 * MB, frozenset({"mp4"}), "WeCom app videos"),
        pb.MEDIA_TYPE_FILE: MediaRule(20 * MB, frozenset(), "WeCom app files"),
    }

    settings: WeComAppSettings

    async def fetch_token(self, deadline: float | None) -> tuple[str, float]:
        params = {"corpid": self.settings.corp_id, "corpsecret": self.settings.corp_secret.get_secret_value()}
        return await self.gettoken("/cgi-bin/gettoken", params, "corp_id and corp_secret", deadline=deadline)

    def prepare(self, request: pb.SendRequest, message_id: str) -> Outgoing:
        message = request.message
        kind = message.WhichOneof("kind") or ""
        violations, body = _recipients(request.recipients)
        body["agentid"] = self.settings.agent_id
        violations += _options(request.options, kind, body)
        builder = _BUILDERS.get(kind)
        if builder is None:
            raise self.unsupported(kind)
        msgtype, content, found = builder(message)
        if kind == "image" and message.image.WhichOneof("source") == "data":
            found += _inline_image(message.image.data, self.media[pb.MEDIA_TYPE_IMAGE])
        violations += found
        body["msgtype"] = msgtype
        body[msgtype] = content
        self.raise_violations(violations)
        outgoing = Outgoing(kind, body)
        if kind == "image" and message.image.WhichOneof("source") == "data":
            filename, content_type = image_upload_name(message.image.data)
            upload = MediaUpload(pb.MEDIA_TYPE_IMAGE, filename, content_type, message.image.data)
            outgoing.pending_media = (upload, content)
        return outgoing

    async def deliver(
        self, outgoing: Outgoing, *, deadline: float | None, attempts: AttemptLog | None = None
    ) -> Delivery:
        answer = await self.call_with_token(
            "POST", "/cgi-bin/message/send", json_body=outgoing.payload, deadline=deadline, attempts=attempts
        )
        rejected = tuple(
            Rejected(kind, vendor_id, reason)
            for field, kind, reason in _REJECTION_FIELDS
            for vendor_id in str(answer.get(field) or "").split("|")
            if vendor_id
        )
        return Delivery(
            state=pb.MESSAGE_STATE_SENT, vendor_message_id=str(answer.get("msgid", "")), rejected=rejected
        )

    async def recall(self, vendor_message_id: str, *, deadline: float | None) -> None:
        try:
            await self.call_with_token(
                "POST", "/cgi-bin/message/recall", json_body={"msgid": vendor_message_id}, deadline=deadline
            )
        except VendorError as error:
            raise recall_refused(error, VENDOR) from None

    async def upload(self, media: MediaUpload, *, deadline: float | None) -> UploadedMedia:
        answer = await self.upload_file(
            "/cgi-bin/media/upload", {}, media, with_token=True, deadline=deadline
        )
        return UploadedMedia(str(answer["media_id"]), uploaded_at(answer) + MEDIA_LIFETIME)


_REJECTION_FIELDS = (
    ("invaliduser", pb.RECIPIENT_KIND_USER, "invalid"),
    ("invalidparty", pb.RECIPIENT_KIND_DEPARTMENT, "invalid"),
    ("invalidtag", pb.RECIPIENT_KIND_TAG, "invalid"),
    ("unlicenseduser", pb.RECIPIENT_KIND_USER, "unlicensed"),
)


def _inline_image(data: bytes, rule: MediaRule) -> list[Violation]:
    """Image bytes are uploaded before delivery, so they must pass the upload's rules now."""
    found = []
    if not data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
        found.append(Violation("message.image.data", "is not a JPG or PNG image; WeCom takes only those"))
    if len(data) > rule.max_bytes:
        found.append(Violation("message.image.data", rule.too_large(len(data))))
    return found


def _recipients(recipients: pb.Recipients) -> tuple[list[Violation], dict[str, Any]]:
    # Each list read once and named directly: this runs on every Send (no getattr by name).
    violations = checks.not_for(
        "recipients.mobiles",
        bool(recipients.mobiles),
        "WeCom application messages address user_ids, not mobiles",
    )
    body: dict[str, Any] = {}
    if recipients.all:
        body["touser"] = "@all"  # the vendor ignores toparty/totag with @all
        return violations, body
    users, departments, tags = recipients.user_ids, recipients.department_ids, recipients.tag_ids
    if not (users or departments or tags):
        violations.append(Violation("recipients", "name user_ids, department_ids or tag_ids, or set all"))
        return violations, body
    if len(users) > USER_LIMIT:
        violations += checks.count_between("recipients.user_ids", users, 0, USER_LIMIT, VENDOR)
    if len(departments) > PARTY_TAG_LIMIT:
        violations += checks.count_between(
            "recipients.department_ids", departments, 0, PARTY_TAG_LIMIT, VENDOR
        )
    if len(tags) > PARTY_TAG_LIMIT:
        violations += checks.count_between("recipients.tag_ids", tags, 0, PARTY_TAG_LIMIT, VENDOR)
    if users:
        body["touser"] = "|".join(users)
    if departments:
        body["toparty"] = "|".join(departments)
    if tags:
        body["totag"] = "|".join(tags)
    return violations, body


def _options(options: pb.SendOptions, kind: str, body: dict[str, Any]) -> list[Violation]:
    violations: list[Violation] = []
    safe = _SAFE.get(options.safe)
    if safe == 2 and kind != "mp_news":
        violations.append(
            Violation("options.safe", "SAFETY_COMPANY_ONLY is for mp_news only (WeCom answers 40074)")
        )
    if safe is not None:
        body["safe"] = safe
    if options.enable_id_trans:
        body["enable_id_trans"] = 1
    if options.enable_duplicate_check:
        body["enable_duplicate_check"] = 1
        if options.duplicate_check_interval_seconds:
            body["duplicate_check_interval"] = options.duplicate_check_interval_seconds
    if options.duplicate_check_interval_seconds > 14400:
        violations.append(Violation("options.duplicate_check_interval_seconds", "is at most 14400 seconds"))
    return violations


Built = tuple[str, dict[str, Any], list[Violation]]


def _text(message: pb.Message) -> Built:
    content = message.text.content
    found = checks.required("message.text.content", content)
    found += checks.max_bytes("message.text.content", content, TEXT_LIMIT, VENDOR)
    return "text", {"content": content}, found


def _markdown(message: pb.Message) -> Built:
    md = message.markdown
    found = checks.required("message.markdown.content", md.content)
    found += checks.max_bytes("message.markdown.content", md.content, TEXT_LIMIT, VENDOR)
    found += checks.not_for(
        "message.markdown.dialect",
        md.dialect == pb.Markdown.DIALECT_V2,
        "markdown_v2 is for WeCom robots; application messages take markdown",
    )
    return "markdown", {"content": md.content}, found


def _image(message: pb.Message) -> Built:
    image = message.image
    if image.WhichOneof("source") == "data":
        return "image", {}, checks.required("message.image.data", image.data)  # uploaded before delivery
    return "image", {"media_id": image.media_id}, checks.required("message.image.media_id", image.media_id)


def _media(kind: str) -> Callable[[pb.Message], Built]:
    def build(message: pb.Message) -> Built:
        media_id = getattr(message, kind).media_id
        return kind, {"media_id": media_id}, checks.required(f"message.{kind}.media_id", media_id)

    return build


def _video(message: pb.Message) -> Built:
    video = message.video
    content = {"media_id": video.media_id}
    if video.title:
        content["title"] = video.title
    if video.description:
        content["description"] = video.description
    return "video", content, checks.required("message.video.media_id", video.media_id)


def _text_card(message: pb.Message) -> Built:
    card = message.text_card
    found = checks.required("message.text_card.title", card.title)
    found += checks.max_bytes("message.text_card.title", card.title, 128, VENDOR)
    found += checks.required("message.text_card.description", card.description)
    found += checks.max_bytes("message.text_card.description", card.description, 512, VENDOR)
    found += checks.required("message.text_card.url", card.url)
    found += checks.max_bytes("message.text_card.url", card.url, 2048, VENDOR)
    found += checks.max_chars("message.text_card.button_text", card.button_text, 4, VENDOR)
    content = {"title": card.title, "description": card.description, "url": card.url}
    if card.button_text:
        content["btntxt"] = card.button_text
    return "textcard", content, found


def _news(message: pb.Message) -> Built:
    articles = message.news.articles
    found = checks.count_between("message.news.articles", articles, 1, 8, VENDOR)
    out = []
    for i, a in enumerate(articles):
        found += checks.required(f"message.news.articles[{i}].title", a.title)
        found += checks.required(
            f"message.news.articles[{i}].url", a.url or a.app_id, "is required (or app_id)"
        )
        item = {"title": a.title}
        for field, key in (("description", "description"), ("url", "url"), ("pic_url", "picurl")):
            if getattr(a, field):
                item[key] = getattr(a, field)
        if a.app_id:
            item["appid"] = a.app_id
            if a.page_path:
                item["pagepath"] = a.page_path
        out.append(item)
    return "news", {"articles": out}, found


def _mp_news(message: pb.Message) -> Built:
    articles = message.mp_news.articles
    found = checks.count_between("message.mp_news.articles", articles, 1, 8, VENDOR)
    out = []
    for i, a in enumerate(articles):
        for field in ("title", "thumb_media_id", "content"):
            found += checks.required(f"message.mp_news.articles[{i}].{field}", getattr(a, field))
        item = {"title": a.title, "thumb_media_id": a.thumb_media_id, "content": a.content}
        for field in ("author", "content_source_url", "digest"):
            if getattr(a, field):
                item[field] = getattr(a, field)
        out.append(item)
    return "mpnews", {"articles": out}, found


def _mini_program_notice(message: pb.Message) -> Built:
    notice = message.mini_program_notice
    found = checks.required("message.mini_program_notice.app_id", notice.app_id)
    found += checks.required("message.mini_program_notice.title", notice.title)
    found += checks.count_between(
        "message.mini_program_notice.content_items", notice.content_items, 0, 10, VENDOR
    )
    content: dict[str, Any] = {"appid": notice.app_id, "title": notice.title}
    if notice.page:
        content["page"] = notice.page
    if notice.description:
        content["description"] = notice.description
    if notice.emphasis_first_item:
        content["emphasis_first_item"] = True
    if notice.content_items:
        content["content_item"] = [{"key": i.key, "value": i.value} for i in notice.content_items]
    return "miniprogram_notice", content, found


def _template_card(message: pb.Message) -> Built:
    card, found = card_to_json(message.template_card)
    card_type = card.get("card_type")
    field = "message.template_card.card"
    needs = CARD_TYPES.get(card_type) if isinstance(card_type, str) else None
    if needs is None:
        kinds = ", ".join(CARD_TYPES)
        found.append(Violation(f"{field}.card_type", f"is {card_type!r}; WeCom takes {kinds}"))
        return "template_card", card, found
    if not any(card.get(key) for key in needs):
        found.append(Violation(field, f"a {card_type} card needs {' or '.join(needs)}"))
    return "template_card", card, found


_BUILDERS = {
    "text": _text,
    "markdown": _markdown,
    "image": _image,
    "voice": _media("voice"),
    "file": _media("file"),
    "video": _video,
    "text_card": _text_card,
    "news": _news,
    "mp_news": _mp_news,
    "mini_program_notice": _mini_program_notice,
    "template_card": _template_card,
}
