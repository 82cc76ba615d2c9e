"""Everything the emulated vendors know: robots, apps, tokens, media, what arrived, faults, the clock.

One `SandboxState` is shared by the HTTP app and the test that drives it, so a test sets up
robots, apps and faults and reads what was received in-process, without going through HTTP.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from gateway.sandbox.access_tokens import TokenBook
from gateway.sandbox.applications import AppBook, DingtalkApp, WecomApp
from gateway.sandbox.channels import APP_CHANNELS, DINGTALK_ROBOT, DINGTALK_WORK, WECOM_APP, WECOM_ROBOT
from gateway.sandbox.clock import SandboxClock
from gateway.sandbox.faults import Drop, Fault, FaultQueue
from gateway.sandbox.media import MediaRecord, MediaShelf
from gateway.sandbox.media_content import MediaContent
from gateway.sandbox.paths import CHANNEL_PATHS
from gateway.sandbox.recording import GETTOKEN, Journal, JournalListener, Received
from gateway.sandbox.robots import DingtalkRobot, RobotBook, WecomRobot

_Book = RobotBook[Any] | AppBook[Any]

DEFAULT_TOKEN_LIFETIME: Final = 7200.0
"""gettoken answers expires_in 7200 (docs/vendors.md, WeCom application messages and
DingTalk work notifications)."""
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


class SandboxState:
    """The sandbox's robots, apps and records; vendor modules read and update it per request.

    Robot and app names are what the journal records (never a credential). An app's name must
    not be used by another app or by a WeCom robot, so that the name-only methods (`media`,
    `expire_tokens`, `revoke_token`...) are never ambiguous.
    """

    def __init__(self, clock: SandboxClock | None = None) -> None:
        self.clock = clock if clock is not None else SandboxClock()
        self.wecom_robots: RobotBook[WecomRobot] = RobotBook()
        self.dingtalk_robots: RobotBook[DingtalkRobot] = RobotBook()
        self.wecom_apps: AppBook[WecomApp] = AppBook()
        self.dingtalk_apps: AppBook[DingtalkApp] = AppBook()
        self.faults = FaultQueue()
        self.media_content = MediaContent()
        """The bytes of accepted uploads, within a budget, for the inbox page."""
        self._journal = Journal()
        self._token_lifetime = DEFAULT_TOKEN_LIFETIME

    # -- WeCom group robots (docs/vendors.md, WeCom group robot) ------------------------------

    def add_wecom_robot(self, name: str, key: str) -> None:
        """Create a robot whose webhook is `.../cgi-bin/webhook/send?key=<key>`."""
        self._refuse_app_name(name, WECOM_ROBOT)
        self.wecom_robots.add(key, WecomRobot(name))

    def remove_wecom_robot(self, name: str) -> None:
        """Delete a robot; its key then answers 93000, as a removed webhook does."""
        self.wecom_robots.remove(name)

    def add_robot_media(self, name: str, media_id: str) -> None:
        """Make `media_id` usable by WeCom robot `name` for 3 days from now (sandbox time).

        A shortcut past the robot's upload_media endpoint: nothing was uploaded, so the record
        has an empty type and filename, size 0 and the sha256 of no bytes.
        """
        placeholder = MediaRecord("", "", 0, _EMPTY_SHA256, "application/octet-stream", self.clock.now())
        self.wecom_robots.get(name).media.put(media_id, placeholder)

    # -- DingTalk custom group robots (docs/vendors.md, DingTalk group robot) -----------------

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

    # -- applications (docs/vendors.md, WeCom application messages and DingTalk work notifications) --

    def add_wecom_app(
        self,
        name: str,
        corp_id: str,
        corp_secret: str,
        agent_id: int,
        users: Iterable[str] = ("zhangsan", "lisi", "wangwu"),
        departments: Iterable[str] = ("1", "2"),
        tags: Iterable[str] = ("1",),
        unlicensed: Iterable[str] = (),
    ) -> None:
        """Create (or replace) a WeCom application and the directory it can see.

        Recipients outside `users`/`departments`/`tags` come back in invaliduser/invalidparty/
        invalidtag; `unlicensed` users in unlicenseduser. Several apps may share a corp_id (one
        corp, several apps), each with its own secret. Replacing an app voids its tokens.
        """
        _require(name=name, corp_id=corp_id, corp_secret=corp_secret)
        self._refuse_app_name(name, WECOM_APP)
        for app in self.wecom_apps:
            if app.name != name and (app.corp_id, app.corp_secret) == (corp_id, corp_secret):
                raise ValueError(f"app {app.name!r} already uses that corp_id and corp_secret")
        self.wecom_apps.add(
            WecomApp(
                name,
                corp_id,
                corp_secret,
                _agent_id(agent_id),
                users=_ids(users, "users", lower=True),
                departments=_ids(departments, "departments"),
                tags=_ids(tags, "tags"),
                unlicensed=_ids(unlicensed, "unlicensed", lower=True),
            )
        )

    def add_dingtalk_app(
        self,
        name: str,
        app_key: str,
        app_secret: str,
        agent_id: int,
        users: Iterable[str] = ("manager01", "user01", "user02"),
        departments: Iterable[str] = ("1", "2"),
    ) -> None:
        """Create (or replace) a DingTalk work-notification app and the directory it can see.

        Unknown recipients are accepted by the send and reported by getsendresult, as the
        vendor does. Replacing an app voids its tokens.
        """
        _require(name=name, app_key=app_key, app_secret=app_secret)
        self._refuse_app_name(name, DINGTALK_WORK)
        for app in self.dingtalk_apps:
            if app.name != name and app.app_key == app_key:
                raise ValueError(f"app {app.name!r} already uses that app_key")
        self.dingtalk_apps.add(
            DingtalkApp(
                name,
                app_key,
                app_secret,
                _agent_id(agent_id),
                users=_ids(users, "users"),
                departments=_ids(departments, "departments"),
            )
        )

    @property
    def token_lifetime(self) -> float:
        """Seconds of sandbox time a newly issued access token lives (default 7200)."""
        return self._token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError("the token lifetime must be a finite number of seconds > 0")
        self._token_lifetime = float(seconds)

    def set_token_lifetime(self, seconds: float) -> None:
        """Tokens issued from now on live `seconds`; tokens already issued keep their expiry."""
        self.token_lifetime = seconds

    def gettoken_calls(self, name: str) -> int:
        """How many gettoken calls app `name` received since the last `clear`, refused or not."""
        self._app_tokens(name)
        return sum(
            1
            for entry in self._journal.select(robot=name)
            if entry.channel in APP_CHANNELS and entry.msgtype == GETTOKEN
        )

    def expire_tokens(self, name: str) -> None:
        """Every token issued to app `name` expires now (WeCom and DingTalk answer 42001).

        The next gettoken issues a new token.
        """
        self._app_tokens(name).expire(name, self.clock.now())

    def revoke_token(self, name: str, *, legacy: bool = False) -> None:
        """App `name`'s current token becomes invalid while the gateway may still cache it.

        WeCom answers 40014; DingTalk answers errcode 88 with sub_code "40014" (its newer form),
        or plain 40014 with `legacy=True` (WeCom ignores `legacy`). The next gettoken issues a
        new token.
        """
        self._app_tokens(name).revoke(name, legacy=legacy)

    def recalled(self, name: str) -> list[str]:
        """Vendor message ids (WeCom msgid, DingTalk task_id) app `name` withdrew, in order."""
        if name in self.wecom_apps:
            return list(self.wecom_apps.get(name).recalled)
        return list(self.dingtalk_apps.get(name).recalled)

    def media(self, name: str) -> dict[str, MediaRecord]:
        """Media uploaded by app or WeCom robot `name`, by media_id (expired ones included)."""
        return self._media_shelf(name).records()

    # -- what arrived ---------------------------------------------------------------------------

    def record(self, entry: Received) -> None:
        """Called by the vendor endpoints for every request they answer."""
        self._journal.append(entry)

    def received(self, channel: str | None = None, robot: str | None = None) -> list[Received]:
        """Every request that reached a vendor endpoint, accepted or not, in arrival order.

        Includes calls that are not messages (gettoken, recall, upload, DingTalk task queries),
        told apart by `msgtype` (see `recording.CALL_MSGTYPES`). `robot` filters by robot or
        app name.
        """
        return self._journal.select(channel, robot)

    def numbered(self, channel: str | None = None, robot: str | None = None) -> list[tuple[int, Received]]:
        """`received`, each entry with its sequence number (never reused, not even after `clear`)."""
        return self._journal.numbered(channel, robot)

    def next_seq(self) -> int:
        """The sequence number the next entry will get."""
        return self._journal.next_seq

    def entry(self, seq: int) -> Received | None:
        """The entry numbered `seq`, or None if it was cleared."""
        return self._journal.at(seq)

    def watch(self, listener: JournalListener) -> Callable[[], None]:
        """Have `listener` told each new entry's number, and None on `clear`; returns the unwatch."""
        return self._journal.watch(listener)

    def delivered(self, channel: str | None = None, robot: str | None = None) -> list[Received]:
        """Only messages the vendor accepted for delivery: errcode 0, not a duplicate, not a call."""
        return [entry for entry in self._journal.select(channel, robot) if entry.delivered]

    def clear(self) -> None:
        """Forget received messages and traffic state.

        Traffic is the journal (so `gettoken_calls` restart at 0), rate windows, throttles,
        msgUuids, and the apps' sent messages and recalls. Robots, apps, issued tokens, media and
        pending faults stay: they are set-up, or state the gateway may hold on to (a cached
        token, a media_id).
        """
        self._journal.clear()
        for wecom in self.wecom_robots:
            wecom.reset()
        for dingtalk in self.dingtalk_robots:
            dingtalk.reset()
        for wecom_app in self.wecom_apps:
            wecom_app.reset()
        for dingtalk_app in self.dingtalk_apps:
            dingtalk_app.reset()

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
        drop: Drop | None = None,
        times: int = 1,
        path: str | None = None,
        sub_code: str | None = None,
    ) -> None:
        """Make the next `times` requests to robot or app `robot` fail as described by `Fault`.

        `http_status`: answer that HTTP status, body `errmsg` or the status line. `errcode`:
        answer HTTP 200 with that errcode and `errmsg`. `delay`: hold the answer back that many
        real seconds (the request itself is handled and recorded on arrival). `drop`: close the
        connection without answering, "before" handling the request (recorded as dropped, nothing
        else happens) or "after" it; alone, never with the others. `path`: only requests to that
        endpoint (e.g. "/cgi-bin/gettoken"); by default any of them. `sub_code`: with `errcode`,
        answered as the answer's `sub_code` (DingTalk's errcode 88).

        Raises KeyError for an unknown channel, robot or app, and ValueError for a path the
        channel does not serve, so a typo fails the test at set-up instead of silently never
        firing.
        """
        fault = Fault(
            http_status=http_status, delay=delay, errcode=errcode, errmsg=errmsg, drop=drop, sub_code=sub_code
        )
        books: dict[str, _Book] = {
            WECOM_ROBOT: self.wecom_robots,
            DINGTALK_ROBOT: self.dingtalk_robots,
            WECOM_APP: self.wecom_apps,
            DINGTALK_WORK: self.dingtalk_apps,
        }
        book = books.get(channel)
        if book is None:
            raise KeyError(f"unknown channel {channel!r}")
        book.get(robot)
        if path is not None and path not in CHANNEL_PATHS[channel]:
            served = ", ".join(sorted(CHANNEL_PATHS[channel]))
            raise ValueError(f"{channel} serves no path {path!r}; it serves {served}")
        self.faults.add(channel, robot, fault, times, path)

    def clear_faults(self) -> None:
        """Drop every fault not yet played."""
        self.faults.clear()

    # -- lookups ------------------------------------------------------------------------------

    def _app_tokens(self, name: str) -> TokenBook:
        if name in self.wecom_apps:
            return self.wecom_apps.tokens
        self.dingtalk_apps.get(name)
        return self.dingtalk_apps.tokens

    def _media_shelf(self, name: str) -> MediaShelf:
        if name in self.wecom_apps:
            return self.wecom_apps.get(name).media
        if name in self.dingtalk_apps:
            return self.dingtalk_apps.get(name).media
        if name in self.wecom_robots:
            return self.wecom_robots.get(name).media
        raise KeyError(f"no app or WeCom robot named {name!r}")

    def _refuse_app_name(self, name: str, channel: str) -> None:
        """Refuse `name` for a new app or WeCom robot of `channel` if another kind holds it."""
        holders: dict[str, _Book] = {
            WECOM_APP: self.wecom_apps,
            DINGTALK_WORK: self.dingtalk_apps,
            WECOM_ROBOT: self.wecom_robots,
        }
        for kind, book in holders.items():
            if kind != channel and name in book:
                raise ValueError(f"the name {name!r} is already used by a {kind}")


def _require(**values: str) -> None:
    for field, value in values.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{field} must be a non-empty string")


def _agent_id(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("agent_id must be an int")
    return value


def _ids(values: Iterable[str], what: str, *, lower: bool = False) -> frozenset[str]:
    if isinstance(values, str):
        raise TypeError(f"{what} must be an iterable of ids, not one string")
    return frozenset(value.lower() if lower else value for value in values)
