"""The URL paths each emulated channel serves.

Kept apart from the vendor modules so that `SandboxState.inject_fault(..., path=...)` can refuse
a path the channel does not serve: a typo then fails the test at set-up instead of the fault
silently never firing.
"""

from __future__ import annotations

from typing import Final

from gateway.sandbox.channels import DINGTALK_ROBOT, DINGTALK_WORK, WECOM_APP, WECOM_ROBOT

PREFIX: Final = "/_sandbox"
"""The sandbox's own API (inspection); no vendor path starts with it."""

# docs/vendors.md, WeCom group robot
WECOM_ROBOT_SEND: Final = "/cgi-bin/webhook/send"
WECOM_ROBOT_UPLOAD: Final = "/cgi-bin/webhook/upload_media"
# docs/vendors.md, DingTalk group robot
DINGTALK_ROBOT_SEND: Final = "/robot/send"
# docs/vendors.md, WeCom application messages
WECOM_GETTOKEN: Final = "/cgi-bin/gettoken"
WECOM_APP_SEND: Final = "/cgi-bin/message/send"
WECOM_APP_RECALL: Final = "/cgi-bin/message/recall"
WECOM_APP_UPLOAD: Final = "/cgi-bin/media/upload"
# docs/vendors.md, DingTalk work notifications
DINGTALK_GETTOKEN: Final = "/gettoken"
DINGTALK_WORK_SEND: Final = "/topapi/message/corpconversation/asyncsend_v2"
DINGTALK_WORK_PROGRESS: Final = "/topapi/message/corpconversation/getsendprogress"
DINGTALK_WORK_RESULT: Final = "/topapi/message/corpconversation/getsendresult"
DINGTALK_WORK_RECALL: Final = "/topapi/message/corpconversation/recall"
DINGTALK_WORK_UPLOAD: Final = "/media/upload"

CHANNEL_PATHS: Final[dict[str, frozenset[str]]] = {
    WECOM_ROBOT: frozenset({WECOM_ROBOT_SEND, WECOM_ROBOT_UPLOAD}),
    DINGTALK_ROBOT: frozenset({DINGTALK_ROBOT_SEND}),
    WECOM_APP: frozenset({WECOM_GETTOKEN, WECOM_APP_SEND, WECOM_APP_RECALL, WECOM_APP_UPLOAD}),
    DINGTALK_WORK: frozenset(
        {
            DINGTALK_GETTOKEN,
            DINGTALK_WORK_SEND,
            DINGTALK_WORK_PROGRESS,
            DINGTALK_WORK_RESULT,
            DINGTALK_WORK_RECALL,
            DINGTALK_WORK_UPLOAD,
        }
    ),
}
