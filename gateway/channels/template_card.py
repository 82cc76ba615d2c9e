"""Template cards are passed through as JSON; this turns the proto Struct back into vendor JSON.

google.protobuf.Struct stores every number as a double, so ``task_id: 1`` would go out as
``1.0``; WeCom expects integers there, so integral values are restored to int.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from generated.notify.v1 import notification_service_pb2 as pb


def card_to_json(card: pb.TemplateCard) -> dict[str, Any]:
    value = _restore_ints(json_format.MessageToDict(card.card))
    return value if isinstance(value, dict) else {}


def _restore_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_ints(v) for v in value]
    return value
