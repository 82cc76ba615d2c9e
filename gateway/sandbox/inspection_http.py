"""JSON answers and request parsing shared by the `/_sandbox/` API's route modules."""

from __future__ import annotations

import json
from typing import Any, TypeGuard

from aiohttp import web


def json_answer(data: object, status: int = 200) -> web.Response:
    """`data` as UTF-8 JSON (Chinese text stays readable)."""
    return web.json_response(data, status=status, dumps=lambda value: json.dumps(value, ensure_ascii=False))


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or HTTP 400."""
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("the body must be JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def is_number(value: object) -> TypeGuard[float]:
    """An int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def bad_request(reason: str) -> web.HTTPBadRequest:
    """HTTP 400 with `{"error": reason}`."""
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")


def not_found(reason: str) -> web.HTTPNotFound:
    """HTTP 404 with `{"error": reason}`."""
    return web.HTTPNotFound(text=json.dumps({"error": reason}), content_type="application/json")
