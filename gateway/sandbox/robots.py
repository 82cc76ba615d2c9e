"""The robots that exist in the sandbox, with the per-robot state their vendor keeps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Generic, Protocol, TypeVar

from gateway.sandbox.media import MediaShelf
from gateway.sandbox.rate import SlidingWindowLimit

# docs/vendors.md, WeCom group robot and DingTalk group robot: 20 messages a minute per robot.
ROBOT_MESSAGES_PER_MINUTE: Final = 20
# docs/vendors.md, WeCom group robot: robot media lasts three days and only its own robot can use it.
WECOM_ROBOT_MEDIA_LIFETIME: Final = 3 * 24 * 3600.0


def _per_minute_limit() -> SlidingWindowLimit:
    return SlidingWindowLimit(ROBOT_MESSAGES_PER_MINUTE, 60.0)


def _robot_media() -> MediaShelf:
    return MediaShelf(WECOM_ROBOT_MEDIA_LIFETIME)


@dataclass
class WecomRobot:
    """A WeCom group robot: its rate window and the media uploaded for it."""

    name: str
    rate: SlidingWindowLimit = field(default_factory=_per_minute_limit)
    media: MediaShelf = field(default_factory=_robot_media)
    """What was uploaded for this robot (its upload_media endpoint, or `add_robot_media`)."""

    def has_media(self, media_id: str, now: float) -> bool:
        """Whether `media_id` was uploaded for this robot and has not expired."""
        return self.media.usable(media_id, now) is not None

    def reset(self) -> None:
        """Forget traffic-derived state (the rate window); keep uploaded media."""
        self.rate.reset()


@dataclass
class DingtalkRobot:
    """A DingTalk custom group robot: its security settings and traffic state."""

    name: str
    secret: str | None = field(default=None, repr=False)
    keywords: tuple[str, ...] = ()
    disabled: bool = False
    rate: SlidingWindowLimit = field(default_factory=_per_minute_limit)
    throttled_until: float | None = None
    """Sandbox time until which every send is refused (vendor: 10 minutes after exceeding 20/min)."""
    msg_uuids: set[str] = field(default_factory=set)
    """msgUuid values of delivered messages, for the vendor's idempotency check."""

    def reset(self) -> None:
        """Forget traffic-derived state: rate window, throttle and seen msgUuids."""
        self.rate.reset()
        self.throttled_until = None
        self.msg_uuids.clear()


class _Named(Protocol):
    @property
    def name(self) -> str: ...


RobotT = TypeVar("RobotT", bound=_Named)


class RobotBook(Generic[RobotT]):
    """The robots of one channel by name, found by the credential a request carries.

    A removed robot's credential is remembered (not its robot) so requests still made with it are
    recorded under the robot's name while being answered as unknown, which is what a test of
    "the webhook was deleted" wants to see.
    """

    def __init__(self) -> None:
        self._robots: dict[str, RobotT] = {}
        self._current: dict[str, str] = {}
        """robot name -> the credential it answers to now."""
        self._ever: dict[str, str] = {}
        """credential -> name of the robot that last used it, including removed robots."""

    def add(self, credential: str, robot: RobotT) -> None:
        """Add `robot`, replacing a robot of the same name (its old credential stops working)."""
        if not credential:
            raise ValueError("the credential must not be empty")
        owner = self.find(credential)
        if owner is not None and owner.name != robot.name:
            raise ValueError(f"robot {owner.name!r} already uses that credential")
        self._robots[robot.name] = robot
        self._current[robot.name] = credential
        self._ever[credential] = robot.name

    def remove(self, name: str) -> None:
        """Remove a robot; its credential then answers as unknown."""
        self.get(name)
        del self._robots[name]
        del self._current[name]

    def get(self, name: str) -> RobotT:
        """The robot called `name`; KeyError if there is none."""
        try:
            return self._robots[name]
        except KeyError:
            raise KeyError(f"no robot named {name!r}") from None

    def find(self, credential: str) -> RobotT | None:
        """The live robot answering to `credential`, if any."""
        name = self._ever.get(credential)
        if name is None or self._current.get(name) != credential:
            return None
        return self._robots[name]

    def name_for(self, credential: str) -> str | None:
        """The name of the robot that uses or used `credential`, for recording."""
        return self._ever.get(credential)

    def __contains__(self, name: object) -> bool:
        return name in self._robots

    def __iter__(self) -> Iterator[RobotT]:
        return iter(list(self._robots.values()))
