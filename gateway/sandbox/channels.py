"""Names of the emulated vendor channels.

They are the same names the gateway's config uses for an account's channel, so a recorded
`Received.channel` can be compared with the account that sent it.
"""

from __future__ import annotations

from typing import Final

WECOM_ROBOT: Final = "wecom_robot"
DINGTALK_ROBOT: Final = "dingtalk_robot"
WECOM_APP: Final = "wecom_app"
DINGTALK_WORK: Final = "dingtalk_work"

APP_CHANNELS: Final = frozenset({WECOM_APP, DINGTALK_WORK})
"""Channels whose calls carry an access token from a gettoken endpoint."""
