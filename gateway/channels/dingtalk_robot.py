"""DingTalk custom group robot (docs/vendors.md, DingTalk group robot).

The robot's access_token is a fixed credential; with a signing secret every call carries
``timestamp`` and ``sign`` (HMAC-SHA256 of "timestamp\\nsecret"). ``msgUuid`` makes the vendor
drop a repeat, which is what lets the gateway retry a timed-out send safely.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from pydantic import Field, SecretStr, field_validator

from gateway.channels import checks
from gateway.channels.attempts import AttemptLog
from gateway.channels.base import ChannelAdapter
from gateway.channels.deliveries import Delivery, Outgoing
from gateway.channels.error_table import ErrorTable
from gateway.channels.settings import AccountSettings
from gateway.channels.transport import encode_json
from gateway.errors import VendorOutcome, Violation
from gateway.store.rate_limits import RateLimit
from generated.notify.v1 import notification_service_pb2 as pb

BODY_LIMIT = 20_000  # bytes; over it the vendor answers 460101
VENDOR = "DingTalk robot"


class DingTalkRobotSettings(AccountSettings):
    access_token: SecretStr = Field(min_length=1)
    secret: SecretStr | None = None  # set when the robot's security mode is "signing"

    @field_validator("secret")
    @classmethod
    def _sec_prefix(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("SEC"):
            raise ValueError("a DingTalk robot signing secret starts with SEC")
        return value


_SECURITY_REJECTED = 310000


class DingTalkRobot(ChannelAdapter):
    channel = "dingtalk_robot"
    Settings = DingTalkRobotSettings
    vendor_name = VENDOR
    default_base_url = "https://oapi.dingtalk.com"
    kinds = frozenset({"text", "markdown", "link", "action_card", "feed_card"})
    vendor_deduplicates = True  # msgUuid: the vendor drops a repeat (docs/vendors.md)
    # 20 messages a minute per robot; a second of margin for the trip to the vendor.
    default_rate_limit = RateLimit(20, 61.0)
    errors = ErrorTable(
        {
            -1: VendorOutcome.RETRY,
            300001: VendorOutcome.CREDENTIAL_REVOKED,
            300005: VendorOutcome.CREDENTIAL_REVOKED,
            400101: VendorOutcome.CREDENTIAL_REVOKED,
            400106: VendorOutcome.CREDENTIAL_REVOKED,
            400102: VendorOutcome.CONFIGURATION,
            400013: VendorOutcome.CONFIGURATION,
            400105: VendorOutcome.INVALID_REQUEST,
            460101: VendorOutcome.INVALID_REQUEST,
            40035: VendorOutcome.INVALID_REQUEST,
            430101: VendorOutcome.INVALID_REQUEST,
            430102: VendorOutcome.INVALID_REQUEST,
            430103: VendorOutcome.INVALID_REQUEST,
            430104: VendorOutcome.INVALID_REQUEST,
            130101: VendorOutcome.RATE_LIMITED,
            410100: VendorOutcome.RATE_LIMITED,
            660026: VendorOutcome.RATE_LIMITED,
        },
        # Over 20 a minute the vendor throttles the robot for 10 minutes.
        rate_limit_retry_after=600.0,
    )

    settings: DingTalkRobotSettings

    def prepare(self, request: pb.SendRequest, message_id: str) -> Outgoing:
        message, recipients = request.message, request.recipients
        kind = message.WhichOneof("kind") or ""
        mentions_allowed = kind in ("text", "markdown")
        violations = checks.robot_recipients(
            recipients, VENDOR, mentions_allowed=mentions_allowed, kinds="text and markdown messages"
        )
        body: dict[str, Any]
        if kind == "text":
            violations += checks.required("message.text.content", message.text.content)
            body = {"msgtype": "text", "text": {"content": _with_mentions(message.text.content, recipients)}}
        elif kind == "markdown":
            md = message.markdown
            violations += checks.required(
                "message.markdown.title",
                md.title,
                "is required: DingTalk shows it in the notification preview",
            )
            violations += checks.required("message.markdown.content", md.content)
            violations += checks.not_for(
                "message.markdown.dialect",
                md.dialect != pb.Markdown.DIALECT_UNSPECIFIED,
                "markdown_v2 is a WeCom robot dialect; DingTalk has one markdown",
            )
            body = {
                "msgtype": "markdown",
                "markdown": {"title": md.title, "text": _with_mentions(md.content, recipients)},
            }
        elif kind == "link":
            link = message.link
            for name, value in (("title", link.title), ("text", link.text), ("url", link.url)):
                violations += checks.required(f"message.link.{name}", value)
            payload = {"title": link.title, "text": link.text, "messageUrl": link.url}
            if link.pic_url:
                payload["picUrl"] = link.pic_url
            body = {"msgtype": "link", "link": payload}
        elif kind == "action_card":
            violations_card, card = _action_card(message.action_card)
            violations += violations_card
            body = {"msgtype": "actionCard", "actionCard": card}
        elif kind == "feed_card":
            links = message.feed_card.links
            violations += checks.count_between("message.feed_card.links", links, 1, 10, VENDOR)
            for i, item in enumerate(links):
                for name, value in (("title", item.title), ("url", item.url), ("pic_url", item.pic_url)):
                    violations += checks.required(f"message.feed_card.links[{i}].{name}", value)
            body = {
                "msgtype": "feedCard",
                "feedCard": {
                    "links": [{"title": x.title, "messageURL": x.url, "picURL": x.pic_url} for x in links]
                },
            }
        else:
            raise self.unsupported(kind)
        if mentions_allowed and _has_mentions(recipients):
            body["at"] = {
                "atMobiles": list(recipients.mobiles),
                "atUserIds": list(recipients.user_ids),
                "isAtAll": recipients.all,
            }
        # The vendor drops a repeat of a msgUuid it has seen, so a resend after a timeout is not
        # delivered twice. It is the gateway's message_id, never the caller's key: an idempotency
        # key is bound to one message_id, so every resend of a message carries the same msgUuid,
        # while two tenants (or one reusing a key after it expired) can never collide.
        body["msgUuid"] = message_id
        encoded = encode_json(body).encode()  # measured against the limit, then sent as it is
        size = len(encoded)
        if size > BODY_LIMIT and not violations:
            violations.append(
                Violation(
                    "message", f"makes a {size}-byte request; {VENDOR} takes at most {BODY_LIMIT} bytes"
                )
            )
        self.raise_violations(violations)
        return Outgoing(kind, body, encoded=encoded)

    async def deliver(
        self, outgoing: Outgoing, *, deadline: float | None, attempts: AttemptLog | None = None
    ) -> Delivery:
        await self.call(
            "POST",
            "/robot/send",
            params=self._auth_params(),
            json_body=outgoing.encoded or outgoing.payload,
            deadline=deadline,
            attempts=attempts,
        )
        return Delivery(state=pb.MESSAGE_STATE_SENT)

    def classify(self, errcode: int, answer: dict[str, Any]) -> VendorOutcome:  # type: ignore[override]
        if errcode == _SECURITY_REJECTED:
            # One code for four security checks; errmsg says which (docs/vendors.md, DingTalk group robot).
            errmsg = str(answer.get("errmsg", "")).lower()
            if "ip" in errmsg.split() or "whitelist" in errmsg:
                return VendorOutcome.PERMISSION
            return VendorOutcome.CONFIGURATION
        return super().classify(errcode, answer)

    def _auth_params(self) -> dict[str, str]:
        params = {"access_token": self.settings.access_token.get_secret_value()}
        if self.settings.secret is not None:
            timestamp = str(int(time.time() * 1000))
            params["timestamp"] = timestamp
            params["sign"] = sign(timestamp, self.settings.secret.get_secret_value())
        return params


def sign(timestamp_ms: str, secret: str) -> str:
    """base64(HMAC-SHA256(secret, "timestamp\\nsecret")); the transport URL-encodes it as a query value."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _has_mentions(recipients: pb.Recipients) -> bool:
    return bool(recipients.user_ids or recipients.mobiles or recipients.all)


def _with_mentions(content: str, recipients: pb.Recipients) -> str:
    """Appends the @tokens DingTalk needs in the text to really ping someone
    (docs/vendors.md, DingTalk group robot)."""
    if not (recipients.mobiles or recipients.user_ids):
        return content
    missing = [f"@{who}" for who in (*recipients.mobiles, *recipients.user_ids) if f"@{who}" not in content]
    return f"{content} {' '.join(missing)}" if missing else content


def _action_card(card: pb.ActionCard) -> tuple[list[Violation], dict[str, Any]]:
    violations = checks.action_card(card, VENDOR)
    body: dict[str, Any] = {"title": card.title, "text": card.markdown}
    if len(card.buttons) == 1:
        body["singleTitle"] = card.buttons[0].title
        body["singleURL"] = card.buttons[0].url
    else:
        body["btns"] = [{"title": b.title, "actionURL": b.url} for b in card.buttons]
    body["btnOrientation"] = "1" if card.orientation == pb.ActionCard.ORIENTATION_HORIZONTAL else "0"
    if card.hide_avatar:
        body["hideAvatar"] = "1"
    return violations, body
