"""The vendor applications that exist in the sandbox, with the state their vendor keeps per app.

A WeCom application (docs/vendors.md, WeCom application messages) and a DingTalk
work-notification app (DingTalk work notifications): credentials, the directory the app can see
(which recipients are valid), uploaded media, sent messages (for recall and send results) and
rate windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Generic, Protocol, TypeVar

from gateway.sandbox.access_tokens import TokenBook
from gateway.sandbox.media import MediaShelf
from gateway.sandbox.rate import SlidingWindowLimit

# docs/vendors.md, WeCom application messages: a media_id lasts three days.
WECOM_MEDIA_LIFETIME: Final = 3 * 24 * 3600.0
# docs/vendors.md, WeCom application messages: 30 messages a minute per member and app.
WECOM_MESSAGES_PER_MEMBER_MINUTE: Final = 30
# docs/vendors.md, DingTalk work notifications: 5000 recipients a minute.
DINGTALK_RECIPIENTS_PER_MINUTE: Final = 5000
# docs/vendors.md, WeCom application messages and DingTalk work notifications: recall within 24 hours.
RECALL_WINDOW: Final = 24 * 3600.0


@dataclass
class SentMessage:
    """A WeCom app message the vendor accepted, as recall needs it."""

    at: float
    recalled: bool = False


@dataclass
class SentTask:
    """A DingTalk work-notification task, as progress, result and recall need it."""

    at: float
    users: tuple[str, ...]
    """Recipients that exist in the app's directory: they have it unread."""
    invalid_users: tuple[str, ...]
    invalid_departments: tuple[str, ...]
    recalled: bool = False


def _wecom_media() -> MediaShelf:
    return MediaShelf(WECOM_MEDIA_LIFETIME)


@dataclass
class WecomApp:
    """A WeCom application: credentials, directory, media and traffic.

    Directory ids are kept lower-cased: WeCom user ids are case-insensitive, and it reports
    invalid ones lower-cased (docs/vendors.md, WeCom application messages).
    """

    name: str
    corp_id: str
    corp_secret: str = field(repr=False)
    agent_id: int
    users: frozenset[str]
    departments: frozenset[str]
    tags: frozenset[str]
    unlicensed: frozenset[str]
    """Users who exist but hold no licence: reported in unlicenseduser, never reached."""
    media: MediaShelf = field(default_factory=_wecom_media)
    sent: dict[str, SentMessage] = field(default_factory=dict)
    """msgid -> the accepted message."""
    recalled: list[str] = field(default_factory=list)
    """msgids withdrawn, in recall order."""
    member_rates: dict[str, SlidingWindowLimit] = field(default_factory=dict)

    def member_rate(self, user: str) -> SlidingWindowLimit:
        """The 30-a-minute window of one member of this app."""
        return self.member_rates.setdefault(user, SlidingWindowLimit(WECOM_MESSAGES_PER_MEMBER_MINUTE, 60.0))

    def reset(self) -> None:
        """Forget traffic: sent messages, recalls and rate windows; keep credentials and media."""
        self.sent.clear()
        self.recalled.clear()
        self.member_rates.clear()


def _dingtalk_media() -> MediaShelf:
    # DingTalk media ids start with "@" (e.g. "@lADPDgQ9q..."); adapters pass them through.
    return MediaShelf(None, id_prefix="@")


def _recipient_rate() -> SlidingWindowLimit:
    return SlidingWindowLimit(DINGTALK_RECIPIENTS_PER_MINUTE, 60.0)


@dataclass
class DingtalkApp:
    """A DingTalk work-notification app: credentials, directory, media and traffic."""

    name: str
    app_key: str
    app_secret: str = field(repr=False)
    agent_id: int
    users: frozenset[str]
    departments: frozenset[str]
    media: MediaShelf = field(default_factory=_dingtalk_media)
    tasks: dict[int, SentTask] = field(default_factory=dict)
    recalled: list[str] = field(default_factory=list)
    """task ids withdrawn (as strings), in recall order."""
    rate: SlidingWindowLimit = field(default_factory=_recipient_rate)

    def reset(self) -> None:
        """Forget traffic: tasks, recalls and the rate window; keep credentials and media."""
        self.tasks.clear()
        self.recalled.clear()
        self.rate.reset()


class _Named(Protocol):
    @property
    def name(self) -> str: ...


AppT = TypeVar("AppT", bound=_Named)


class AppBook(Generic[AppT]):
    """The apps of one channel by name, and the access tokens issued to them.

    Apps are found by name; the vendor modules find them by credentials (gettoken) or by token
    (every other call) through `tokens`.
    """

    def __init__(self) -> None:
        self._apps: dict[str, AppT] = {}
        self.tokens = TokenBook()

    def add(self, app: AppT) -> None:
        """Add `app`, replacing an app of the same name; the replaced app's tokens stop working."""
        if app.name in self._apps:
            self.tokens.forget(app.name)
        self._apps[app.name] = app

    def get(self, name: str) -> AppT:
        """The app called `name`; KeyError if there is none."""
        try:
            return self._apps[name]
        except KeyError:
            raise KeyError(f"no app named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._apps

    def __iter__(self) -> Iterator[AppT]:
        return iter(list(self._apps.values()))
