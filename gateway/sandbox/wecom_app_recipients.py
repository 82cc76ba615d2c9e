"""Whom a WeCom application message reaches, judged against the app's directory
(docs/vendors.md, WeCom application messages).

touser/toparty/totag are `|`-joined ids. Ids the app cannot see are not an error while someone
valid remains: the send happens and they come back in invaliduser/invalidparty/invalidtag (users
lower-cased), unlicensed users in unlicenseduser. Nobody valid: 81013, nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from gateway.sandbox.answers import Rejection
from gateway.sandbox.applications import WecomApp

USER_LIMIT: Final = 1000
PARTY_TAG_LIMIT: Final = 100
EVERYONE: Final = "@all"


@dataclass(frozen=True)
class Reach:
    """Who gets the message, and who was refused and why."""

    users: tuple[str, ...]
    parties: tuple[str, ...]
    tags: tuple[str, ...]
    invalid_users: tuple[str, ...] = ()
    invalid_parties: tuple[str, ...] = ()
    invalid_tags: tuple[str, ...] = ()
    unlicensed: tuple[str, ...] = ()

    @property
    def nobody(self) -> bool:
        """No valid user, party or tag remains."""
        return not (self.users or self.parties or self.tags)

    def fields(self) -> dict[str, str]:
        """The answer's invalid* fields: `|`-joined strings, "" when none."""
        return {
            "invaliduser": "|".join(self.invalid_users),
            "invalidparty": "|".join(self.invalid_parties),
            "invalidtag": "|".join(self.invalid_tags),
            "unlicenseduser": "|".join(self.unlicensed),
        }


def reach(body: dict[str, Any], app: WecomApp) -> Reach:
    """Check the recipient fields and resolve them against `app`'s directory.

    Raises 40035 (none given), 40031 (over 1000 users), 82002/82003 (over 100 parties/tags) and
    81013 (all invalid, with the invalid* fields).
    """
    users = _ids(body, "touser")
    parties = _ids(body, "toparty")
    tags = _ids(body, "totag")
    if not (users or parties or tags):
        raise Rejection(40035, "missing parameter touser/toparty/totag")
    if users == (EVERYONE,):
        # "@all" is everyone who can see the app; toparty and totag are then ignored.
        return Reach(tuple(sorted(app.users - app.unlicensed)), (), ())
    if len(users) > USER_LIMIT:
        raise Rejection(40031, f"invalid userid list size, at most {USER_LIMIT}")
    if len(parties) > PARTY_TAG_LIMIT:
        raise Rejection(82002, f"invalid party list size, at most {PARTY_TAG_LIMIT}")
    if len(tags) > PARTY_TAG_LIMIT:
        raise Rejection(82003, f"invalid tag list size, at most {PARTY_TAG_LIMIT}")
    lowered = [user.lower() for user in users]
    result = Reach(
        users=tuple(u for u in lowered if u in app.users and u not in app.unlicensed),
        parties=tuple(p for p in parties if p in app.departments),
        tags=tuple(t for t in tags if t in app.tags),
        invalid_users=tuple(u for u in lowered if u not in app.users and u not in app.unlicensed),
        invalid_parties=tuple(p for p in parties if p not in app.departments),
        invalid_tags=tuple(t for t in tags if t not in app.tags),
        unlicensed=tuple(u for u in lowered if u in app.unlicensed),
    )
    if result.nobody:
        raise Rejection(81013, "user & party & tag all invalid", fields=result.fields())
    return result


def _ids(body: dict[str, Any], name: str) -> tuple[str, ...]:
    """The distinct ids of one `|`-joined field, in the order given."""
    value = body.get(name)
    if value is None or value == "":
        return ()
    if not isinstance(value, str):
        raise Rejection(40035, f"invalid parameter {name}: must be ids joined with |")
    return tuple(dict.fromkeys(item for item in value.split("|") if item))
