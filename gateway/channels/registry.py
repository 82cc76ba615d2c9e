"""Every channel the gateway knows, by the name accounts use in config.

Adding a channel: write its module (an adapter class with its Settings), add one line here.
"""

from __future__ import annotations

from gateway.channels.base import ChannelAdapter
from gateway.channels.dingtalk_robot import DingTalkRobot
from gateway.channels.dingtalk_work import DingTalkWork
from gateway.channels.wecom_app import WeComApp
from gateway.channels.wecom_robot import WeComRobot

CHANNELS: dict[str, type[ChannelAdapter]] = {
    adapter.channel: adapter
    for adapter in (
        DingTalkRobot,
        DingTalkWork,
        WeComApp,
        WeComRobot,
    )
}
