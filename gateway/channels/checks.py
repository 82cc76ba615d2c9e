"""Small validators that adapters compose to declare a vendor's limits as field violations.

Each returns the violations it finds (never raises), so one request reports every problem at once.
Byte limits are counted in UTF-8, as the vendors count them.
"""

from __future__ import annotations

from collections.abc import Sized

from gateway.errors import Violation
from generated.notify.v1 import notification_service_pb2 as pb


def required(field: str, value: object, why: str = "is required") -> list[Violation]:
    return [] if value else [Violation(field, why)]


def max_bytes(field: str, value: str, limit: int, vendor: str) -> list[Violation]:
    size = len(value.encode())
    if size > limit:
        return [Violation(field, f"is {size} bytes; {vendor} takes at most {limit} bytes (UTF-8)")]
    return []


def max_chars(field: str, value: str, limit: int, vendor: str) -> list[Violation]:
    if len(value) > limit:
        return [Violation(field, f"is {len(value)} characters; {vendor} takes at most {limit}")]
    return []


def count_between(field: str, items: Sized, low: int, high: int, vendor: str) -> list[Violation]:
    n = len(items)
    if n < low or n > high:
        return [Violation(field, f"has {n} entries; {vendor} takes {low} to {high}")]
    return []


def not_for(field: str, present: bool, why: str) -> list[Violation]:
    return [Violation(field, why)] if present else []


def action_card(card: pb.ActionCard, vendor: str) -> list[Violation]:
    """Both DingTalk channels: a title, a markdown body and 1 to 10 buttons with title and url."""
    violations = required("message.action_card.title", card.title)
    violations += required("message.action_card.markdown", card.markdown)
    violations += count_between("message.action_card.buttons", card.buttons, 1, 10, vendor)
    for i, button in enumerate(card.buttons):
        violations += required(f"message.action_card.buttons[{i}].title", button.title)
        violations += required(f"message.action_card.buttons[{i}].url", button.url)
    return violations


def robot_recipients(
    recipients: pb.Recipients, vendor: str, *, mentions_allowed: bool, kinds: str
) -> list[Violation]:
    """Group robots post to their group: they can only @-mention people, and only in some kinds."""
    violations: list[Violation] = []
    if recipients.department_ids or recipients.tag_ids:  # the text only when it is needed
        why = f"a {vendor} posts to its group; it can only @-mention user_ids, mobiles or all"
        violations += not_for("recipients.department_ids", bool(recipients.department_ids), why)
        violations += not_for("recipients.tag_ids", bool(recipients.tag_ids), why)
    if not mentions_allowed:
        mentions = bool(recipients.user_ids or recipients.mobiles or recipients.all)
        violations += not_for("recipients", mentions, f"{vendor}s @-mention people only in {kinds}")
    return violations
