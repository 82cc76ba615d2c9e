"""Names of the emulated vendor channels.

They are the same names the gateway's config uses for an account's channel, so a recorded
`Received.channel` can be compared with the account that sent it.
"""

from __future__ import annotations

from typing import Final

WECOM_ROBOT: Final = "wecom_robot"
DINGTALK_ROBOT: Final = "dingtalk_robot"
