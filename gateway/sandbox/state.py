"""Everything the emulated vendors know: robots, what arrived, pending faults, the clock.

One `SandboxState` is shared by the HTTP app and the test that drives it, so a test sets up
robots and faults and reads what was received in-process, without going through HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.sandbox.channels import DINGTALK_ROBOT, WECOM_ROBOT
from gateway.sandbox.clock import SandboxClock
from gateway.sandbox.faults import Fault, FaultQueue
from gateway.sandbox.recording import Journal, Received
from gateway.sandbox.robots import DingtalkRobot, RobotBook, WecomRobot


class SandboxState:
    """The sandbox's robots and records; vendor modules read and update it per request."""

    def __init__(self, clock: SandboxClock | None = None) -> None:
        self.clock = clock if clock is not None else SandboxClock()
        self.wecom_robots: RobotBook[WecomRobot] = RobotBook()
        self.dingtalk_robots: RobotBook[DingtalkRobot] = RobotBook()
        self.faults = FaultQueue()
        self._journal = Journal()

    # -- WeCom group robots (vendor-apis.md B) ------------------------------------------------

    def add_wecom_robot(self, name: str, key: str) -> None:
        """Create a robot whose webhook is `.../cgi-bin/webhook/send?key=<key>`."""
        self.wecom_robots.add(key, WecomRobot(name))

    def remove_wecom_robot(self, name: str) -> None:
        """Delete a robot; its key then answers 93000, as a removed webhook does."""
        self.wecom_robots.remove(name)

    def add_robot_media(self, name: str, media_id: str) -> None:
        """Make `media_id` usable by WeCom robot `name` for 3 days from now (sandbox time).

        Stands in for the robot's own upload_media endpoint until that is emulated.
        """
        self.wecom_robots.get(name).media[media_id] = self.clock.now()

    # -- DingTalk custom group robots (vendor-apis.md C) --------------------------------------

    def add_dingtalk_robot(
        self,
        name: str,
        access_token: str,
        secret: str | None = None,
        keywords: Sequence[str] = (),
    ) -> None:
        """Create a robot; `secret` turns on signing, `keywords` the keyword check."""
        if isinstance(keywords, str):
            raise TypeError("keywords must be a sequence of strings, not one string")
        self.dingtalk_robots.add(
            access_token, DingtalkRobot(name, secret=secret or None, keywords=tuple(keywords))
        )

    def remove_dingtalk_robot(self, name: str) -> None:
        """Delete a robot; its token then answers 300001."""
        self.dingtalk_robots.remove(name)

    def disable_dingtalk_robot(self, name: str) -> None:
        """Disable a robot (a group admin switched it off); it answers 400102."""
        self.dingtalk_robots.get(name).disabled = True

    def enable_dingtalk_robot(self, name: str) -> None:
        """Undo `disable_dingtalk_robot`."""
        self.dingtalk_robots.get(name).disabled = False

    # -- what arrived ---------------------------------------------------------------------------

    def record(self, entry: Received) -> None:
        """Called by the vendor endpoints for every request they answer."""
        self._journal.append(entry)

    def received(self, channel: str | None = None, robot: str | None = None) -> list[Received]:
        """Every request that reached a robot endpoint, accepted or not, in arrival order."""
        return self._journal.select(channel, robot)

    def delivered(self, channel: str | None = None, robot: str | None = None) -> list[Received]:
        """Only the messages the vendor would have shown: errcode 0 and not a duplicate."""
        return [entry for entry in self._journal.select(channel, robot) if entry.delivered]

    def clear(self) -> None:
        """Forget received messages and traffic state (rate windows, throttles, msgUuids).

        Robots, their media and pending faults stay: they are set-up, not traffic.
        """
        self._journal.clear()
        for wecom in self.wecom_robots:
            wecom.reset()
        for dingtalk in self.dingtalk_robots:
            dingtalk.reset()

    # -- fault injection ----------------------------------------------------------------------

    def inject_fault(
        self,
        channel: str,
        robot: str,
        *,
        http_status: int | None = None,
        delay: float | None = None,
        errcode: int | None = None,
        errmsg: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` requests to `robot` fail as described by `Fault`.

        `http_status`: answer that HTTP status, body `errmsg` or the status line. `errcode`:
        answer HTTP 200 with that errcode and `errmsg`. `delay`: hold the answer back that many
        real seconds (the request itself is handled and recorded on arrival).

        Raises KeyError for an unknown channel or robot, so a typo fails the test at set-up
        instead of silently never firing.
        """
        fault = Fault(http_status=http_status, delay=delay, errcode=errcode, errmsg=errmsg)
        if channel == WECOM_ROBOT:
            self.wecom_robots.get(robot)
        elif channel == DINGTALK_ROBOT:
            self.dingtalk_robots.get(robot)
        else:
            raise KeyError(f"unknown channel {channel!r}")
        self.faults.add(channel, robot, fault, times)

    def clear_faults(self) -> None:
        """Drop every fault not yet played."""
        self.faults.clear()
