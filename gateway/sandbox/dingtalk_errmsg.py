"""DingTalk's errmsg style, shared by every emulated DingTalk endpoint."""

from __future__ import annotations

from aiohttp import web


def dingtalk_errmsg(errcode: int, text: str, request: web.Request) -> str:
    """DingTalk's errmsg is the bare text (no request id or caller IP, unlike WeCom's)."""
    return text
