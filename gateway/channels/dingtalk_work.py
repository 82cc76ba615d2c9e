"""DingTalk work notifications (docs/vendors.md, DingTalk work notifications).

Calls carry an access token from ``/gettoken`` (appkey + appsecret). A send returns a task_id:
"accepted", not "delivered" (the vendor drops some messages silently: same content to the same
user twice a day, over 500 a day per user), so the message is SENT and the gateway later asks
getsendprogress / getsendresult who received and who read it (``delivery_report``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, SecretStr

from gateway.channels import checks
from gateway.channels.attempts import AttemptLog
from gateway.channels.base import ChannelAdapter
from gateway.channels.deliveries import Delivery, MediaUpload, Outgoing, UploadedMedia
from gateway.channels.error_table import ErrorTable
from gateway.channels.media_rules import MB, MediaRule, image_upload_name
from gateway.channels.recall_errors import recall_refused
from gateway.channels.settings import AccountSettings
from gateway.errors import VendorError, VendorOutcome, Violation
from generated.notify.v1 import notification_service_pb2 as pb

VENDOR = "DingTalk work notification"
_TASK_DONE = 2  # getsendprogress status: 0 not started, 1 processing, 2 done
USER_LIMIT = 5000
# errcode 88's newer form of "invalid token" (40014, 40000) and of "token expired" (42001)
_TOKEN_SUB_CODES = frozenset({"40014", "40000", "42001"})


class DingTalkWorkSettings(AccountSettings):
    app_key: str = Field(min_length=1)
    app_secret: SecretStr = Field(min_length=1)
    agent_id: int = Field(ge=0)


class DingTalkWork(ChannelAdapter):
    channel = "dingtalk_work"
    Settings = DingTalkWorkSettings
    vendor_name = VENDOR
    default_base_url = "https://oapi.dingtalk.com"
    uses_token = True
    recallable = True
    reports_delivery = True
    kinds = frozenset({"text", "image", "voice", "file", "link", "markdown", "oa", "action_card"})
    errors = ErrorTable(
        {
            -1: VendorOutcome.RETRY,
            **dict.fromkeys((40014, 42001, 40001, 33001), VendorOutcome.TOKEN_INVALID),
            88: VendorOutcome.PERMISSION,
            **dict.fromkeys(
                (33012, 60121, 40035, 40004, 40006, 40007, 45001, 45002, 41101), VendorOutcome.INVALID_REQUEST
            ),
            40056: VendorOutcome.CONFIGURATION,
            41011: VendorOutcome.CONFIGURATION,
            40096: VendorOutcome.CONFIGURATION,
            40089: VendorOutcome.CONFIGURATION,
            **dict.fromkeys((45009, *range(90001, 90015), 90018), VendorOutcome.RATE_LIMITED),
            60011: VendorOutcome.PERMISSION,
            60020: VendorOutcome.PERMISSION,
        },
        rate_limit_retry_after=60.0,
    )

    media = {
        pb.MEDIA_TYPE_IMAGE: MediaRule(
            20 * MB, frozenset({"jpg", "jpeg", "gif", "png", "bmp"}), "DingTalk images"
        ),
        pb.MEDIA_TYPE_VOICE: MediaRule(2 * MB, frozenset({"amr", "mp3", "wav"}), "DingTalk voice clips"),
        pb.MEDIA_TYPE_VIDEO: MediaRule(20 * MB, frozenset({"mp4"}), "DingTalk videos"),
        pb.MEDIA_TYPE_FILE: MediaRule(
            20 * MB,
            frozenset({"doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip", "pdf", "rar"}),
            "DingTalk files",
        ),
    }

    settings: DingTalkWorkSettings

    def classify(self, errcode: int, answer: Mapping[str, Any]) -> VendorOutcome:
        if errcode == 88 and str(answer.get("sub_code", "")) in _TOKEN_SUB_CODES:
            return VendorOutcome.TOKEN_INVALID
        return super().classify(errcode, answer)

    async def fetch_token(self, deadline: float | None) -> tuple[str, float]:
        params = {"appkey": self.settings.app_key, "appsecret": self.settings.app_secret.get_secret_value()}
        return await self.gettoken("/gettoken", params, "app_key and app_secret", deadline=deadline)

    def prepare(self, request: pb.SendRequest, message_id: str) -> Outgoing:
        message = request.message
        kind = message.WhichOneof("kind") or ""
        builder = _BUILDERS.get(kind)
        if builder is None:
            raise self.unsupported(kind)
        violations, body = _recipients(request.recipients)
        msgtype, content, found = builder(message)
        violations += found
        body["agent_id"] = self.settings.agent_id
        body["msg"] = {"msgtype": msgtype, msgtype: content}
        if kind == "image" and message.image.WhichOneof("source") == "data":
            data = message.image.data
            rule = self.media[pb.MEDIA_TYPE_IMAGE]
            if len(data) > rule.max_bytes:
                violations.append(Violation("message.image.data", rule.too_large(len(data))))
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
            "POST",
            "/topapi/message/corpconversation/asyncsend_v2",
            json_body=outgoing.payload,
            deadline=deadline,
            attempts=attempts,
        )
        return Delivery(state=pb.MESSAGE_STATE_SENT, vendor_message_id=str(answer.get("task_id", "")))

    async def delivery_report(
        self, vendor_message_id: str, *, deadline: float | None
    ) -> pb.DeliveryReport | None:
        task = {"agent_id": self.settings.agent_id, "task_id": int(vendor_message_id)}
        answer = await self.call_with_token(
            "POST", "/topapi/message/corpconversation/getsendprogress", json_body=task, deadline=deadline
        )
        progress = answer.get("progress")
        if not isinstance(progress, dict) or progress.get("status") != _TASK_DONE:
            return None
        answer = await self.call_with_token(
            "POST", "/topapi/message/corpconversation/getsendresult", json_body=task, deadline=deadline
        )
        result = answer.get("send_result")
        if not isinstance(result, dict):
            return None
        forbidden = _ids(result, "forbidden_user_id_list") + [
            str(item.get("userid", ""))
            for item in result.get("forbidden_list") or ()
            if isinstance(item, dict)
        ]
        return pb.DeliveryReport(
            read_user_ids=_ids(result, "read_user_id_list"),
            unread_user_ids=_ids(result, "unread_user_id_list"),
            failed_user_ids=_ids(result, "failed_user_id_list"),
            forbidden_user_ids=list(dict.fromkeys(u for u in forbidden if u)),
            invalid_user_ids=_ids(result, "invalid_user_id_list"),
            invalid_department_ids=_ids(result, "invalid_dept_id_list"),
        )

    async def recall(self, vendor_message_id: str, *, deadline: float | None) -> None:
        body = {"agent_id": self.settings.agent_id, "msg_task_id": int(vendor_message_id)}
        try:
            await self.call_with_token(
                "POST", "/topapi/message/corpconversation/recall", json_body=body, deadline=deadline
            )
        except VendorError as error:
            raise recall_refused(error, VENDOR) from None

    async def upload(self, media: MediaUpload, *, deadline: float | None) -> UploadedMedia:
        answer = await self.upload_file("/media/upload", {}, media, with_token=True, deadline=deadline)
        # The answer's shape is uncertain (docs/vendors.md, DingTalk work notifications): accept
        # either spelling of the id.
        media_id = answer.get("media_id") or answer.get("mediaId")
        if not media_id:
            raise self.vendor_error(VendorOutcome.UNKNOWN, 0, "upload answered without a media_id")
        return UploadedMedia(str(media_id), None)  # DingTalk media ids do not expire


def _recipients(recipients: pb.Recipients) -> tuple[list[Violation], dict[str, Any]]:
    violations = checks.not_for("recipients.tag_ids", bool(recipients.tag_ids), _NO_TAGS)
    violations += checks.not_for("recipients.mobiles", bool(recipients.mobiles), _NO_MOBILES)
    body: dict[str, Any] = {}
    if recipients.all:
        body["to_all_user"] = True
        return violations, body
    body["to_all_user"] = False
    if not (recipients.user_ids or recipients.department_ids):
        violations.append(Violation("recipients", "name user_ids or department_ids, or set all"))
    violations += checks.count_between("recipients.user_ids", recipients.user_ids, 0, USER_LIMIT, VENDOR)
    if recipients.user_ids:
        body["userid_list"] = ",".join(recipients.user_ids)
    if recipients.department_ids:
        body["dept_id_list"] = ",".join(recipients.department_ids)
    return violations, body


# The texts once, not formatted again on every Send.
_NO_TAGS = f"{VENDOR}s have no tags"
_NO_MOBILES = f"{VENDOR}s address user_ids, not mobiles"

Built = tuple[str, dict[str, Any], list[Violation]]


def _text(message: pb.Message) -> Built:
    return (
        "text",
        {"content": message.text.content},
        checks.required("message.text.content", message.text.content),
    )


def _media(kind: str) -> Callable[[pb.Message], Built]:
    def build(message: pb.Message) -> Built:
        media_id = getattr(message, kind).media_id
        return kind, {"media_id": media_id}, checks.required(f"message.{kind}.media_id", media_id)

    return build


def _image(message: pb.Message) -> Built:
    if message.image.WhichOneof("source") == "data":
        return (
            "image",
            {},
            checks.required("message.image.data", message.image.data),
        )  # uploaded before delivery
    return _media("image")(message)


def _voice(message: pb.Message) -> Built:
    voice = message.voice
    found = checks.required("message.voice.media_id", voice.media_id)
    if not 0 < voice.duration_seconds < 60:
        found.append(Violation("message.voice.duration_seconds", "is required by DingTalk: 1 to 59 seconds"))
    # DingTalk's documented examples send the duration as a string.
    return "voice", {"media_id": voice.media_id, "duration": str(voice.duration_seconds)}, found


def _link(message: pb.Message) -> Built:
    link = message.link
    found: list[Violation] = []
    for name in ("title", "text", "url", "pic_url"):
        found += checks.required(f"message.link.{name}", getattr(link, name))
    content = {"messageUrl": link.url, "picUrl": link.pic_url, "title": link.title, "text": link.text}
    return "link", content, found


def _markdown(message: pb.Message) -> Built:
    md = message.markdown
    found = checks.required("message.markdown.title", md.title)
    found += checks.required("message.markdown.content", md.content)
    found += checks.not_for(
        "message.markdown.dialect",
        md.dialect == pb.Markdown.DIALECT_V2,
        "markdown_v2 is a WeCom robot dialect",
    )
    return "markdown", {"title": md.title, "text": md.content}, found


def _oa(message: pb.Message) -> Built:
    oa = message.oa
    found = checks.required("message.oa.message_url", oa.message_url)
    found += checks.required("message.oa.head.text", oa.head.text)
    found += checks.required("message.oa.head.bgcolor", oa.head.bgcolor)
    content: dict[str, Any] = {
        "message_url": oa.message_url,
        "head": {"bgcolor": oa.head.bgcolor, "text": oa.head.text},
    }
    if oa.pc_message_url:
        content["pc_message_url"] = oa.pc_message_url
    if oa.HasField("status_bar"):
        content["status_bar"] = {
            "status_value": oa.status_bar.status_value,
            "status_bg": oa.status_bar.status_bg,
        }
    body: dict[str, Any] = {}
    for field in ("title", "content", "image", "file_count", "author"):
        if getattr(oa.body, field):
            body[field] = getattr(oa.body, field)
    if oa.body.form:
        body["form"] = [{"key": item.key, "value": item.value} for item in oa.body.form]
    if oa.body.HasField("rich"):
        body["rich"] = {"num": oa.body.rich.num, "unit": oa.body.rich.unit}
    if not body:
        found.append(
            Violation("message.oa.body", "is required: give at least a title, form, rich or content")
        )
    content["body"] = body
    return "oa", content, found


def _action_card(message: pb.Message) -> Built:
    card = message.action_card
    found = checks.action_card(card, VENDOR)
    found += checks.not_for(
        "message.action_card.hide_avatar", card.hide_avatar, "hide_avatar is for DingTalk robots"
    )
    content: dict[str, Any] = {"title": card.title, "markdown": card.markdown}
    if len(card.buttons) == 1:
        content["single_title"] = card.buttons[0].title
        content["single_url"] = card.buttons[0].url
    else:
        content["btn_orientation"] = "1" if card.orientation == pb.ActionCard.ORIENTATION_HORIZONTAL else "0"
        content["btn_json_list"] = [{"title": b.title, "action_url": b.url} for b in card.buttons]
    return "action_card", content, found


_BUILDERS = {
    "text": _text,
    "image": _image,
    "voice": _voice,
    "file": _media("file"),
    "link": _link,
    "markdown": _markdown,
    "oa": _oa,
    "action_card": _action_card,
}


def _ids(result: Mapping[str, Any], name: str) -> list[str]:
    """A getsendresult id list; the vendor sends lists, but a comma-joined string is read too."""
    value = result.get(name) or []
    if isinstance(value, str):
        value = value.split(",")
    return [str(item) for item in value if str(item)]
