"""The one message every scenario sends, in each form a scenario needs it.

The same text goes through the gateway (as a SendRequest), through the floor A echo server (the
very same SendRequest bytes, so the gRPC floor parses and frames what a Send does), straight to
the vendor for floor B (the JSON the gateway's adapters build for it), and through Apprise.
"""

from __future__ import annotations

import json
from typing import Any, Final

from bench.fixture import WECOM_USER
from generated.notify.v1 import notification_service_pb2 as pb

TEXT: Final = "【发布】notify-gateway build #1234 deployed to prod: all 87 checks passed in 3m12s"


def send_requests(
    dingtalk_account: str, wecom_app_account: str, *, queued: bool = False
) -> list[pb.SendRequest]:
    """A text to the DingTalk robot account (a group post), and to one member via the WeCom app.

    `queued`: the same Sends asking for queued delivery in their options, as a client that picks
    the mode per request does (the accounts' default stays `sync`).
    """
    text = pb.Message(text=pb.Text(content=TEXT))
    options = pb.SendOptions(delivery=pb.DELIVERY_MODE_QUEUED) if queued else None
    return [
        pb.SendRequest(account=dingtalk_account, message=text, options=options),
        pb.SendRequest(
            account=wecom_app_account,
            message=text,
            recipients=pb.Recipients(user_ids=[WECOM_USER]),
            options=options,
        ),
    ]


def echo_response() -> pb.SendResponse:
    """What floor A answers: the shape of the gateway's answer (ULID-sized id, a vendor msgid)."""
    return pb.SendResponse(
        message_id="01JBENCH0000000000000000AA",
        state=pb.MESSAGE_STATE_SENT,
        vendor_message_id="x" * 32,
        recallable=True,
    )


def dingtalk_robot_body(msg_uuid: str) -> dict[str, Any]:
    """The body the gateway's DingTalk robot adapter sends for TEXT (msgUuid unique per message)."""
    return {"msgtype": "text", "text": {"content": TEXT}, "msgUuid": msg_uuid}


def wecom_app_body(agent_id: int) -> dict[str, Any]:
    """The body the gateway's WeCom app adapter sends for TEXT to WECOM_USER."""
    return {"touser": WECOM_USER, "agentid": agent_id, "msgtype": "text", "text": {"content": TEXT}}


def encode_json(value: Any) -> str:
    """As the gateway's transport encodes vendor JSON (UTF-8, no spaces)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
