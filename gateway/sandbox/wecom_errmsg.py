"""WeCom's errmsg style, shared by every emulated WeCom endpoint."""

from __future__ import annotations

import secrets
import time

from aiohttp import web

_MORE_INFO = "https://open.work.weixin.qq.com/devtool/query?e="


def wecom_errmsg(errcode: int, text: str, request: web.Request) -> str:
    """`"<text>, hint: [<id>], from ip: <ip>, more info at ...?e=<code>"`
    (docs/vendors.md, WeCom application messages).

    The caller's IP is the one WeCom reports; the hint is unique per answer, as WeCom's request
    id is, so an adapter must not treat errmsg as a stable key. The text never includes the
    request's query string: that is where the webhook key travels.
    """
    hint = f"{int(time.time())}_sandbox_{secrets.token_hex(6)}"
    ip = request.remote or "127.0.0.1"
    return f"{text}, hint: [{hint}], from ip: {ip}, more info at {_MORE_INFO}{errcode}"
