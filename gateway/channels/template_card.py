"""Template cards are passed through as JSON; this turns the proto Struct back into vendor JSON.

google.protobuf.Struct stores every number as a double, so ``task_id: 1`` would go out as
``1.0``; WeCom expects integers there, so integral values are restored to int. A double can also
be NaN or an infinity, which JSON cannot carry: each one is a violation naming where it is
(``message.template_card.card.jump_list[1].type``), so the caller learns which value to fix.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2

from gateway.errors import Violation
from generated.notify.v1 import notification_service_pb2 as pb

FIELD = "message.template_card.card"


def card_to_json(card: pb.TemplateCard) -> tuple[dict[str, Any], list[Violation]]:
    """The card as vendor JSON, and a violation for every value JSON cannot hold."""
    violations: list[Violation] = []
    value = _struct(card.card, FIELD, violations)
    return value, violations


def _struct(struct: struct_pb2.Struct, path: str, violations: list[Violation]) -> dict[str, Any]:
    return {key: _value(value, f"{path}.{key}", violations) for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value, path: str, violations: list[Violation]) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            violations.append(Violation(path, f"is {number}, not a finite number; JSON cannot carry it"))
            return None
        return int(number) if number.is_integer() else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct(value.struct_value, path, violations)
    if kind == "list_value":
        return [_value(item, f"{path}[{i}]", violations) for i, item in enumerate(value.list_value.values)]
    return None  # null_value, or no kind set (json_format reads both as null)
