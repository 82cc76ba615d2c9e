"""Shared pieces for the sandbox tests: credentials, robot and app clients, DingTalk signing, media."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

WECOM_KEY = "wecom-key-ops-6a1f"
DING_TOKEN = "ding-token-alerts-93be"
DING_SIGNED_TOKEN = "ding-token-signed-11c0"
DING_SECRET = "SEC4f1e2d3c4b5a69788796a5b4c3d2e1f0"
DING_KEYWORD_TOKEN = "ding-token-keywords-5d2a"
KEYWORDS = ("告警", "deploy")

WECOM_APP = "hr"
CORP_ID = "ww-sandbox-corp-01"
CORP_SECRET = "corp-secret-hr-7f3a9c"
WECOM_AGENT_ID = 1000002
DING_APP = "notify"
DING_APP_KEY = "dingappkey-notify-42"
DING_APP_SECRET = "ding-app-secret-5c1e8b"
DING_AGENT_ID = 2000001

# The smallest byte strings each format check accepts (magic bytes plus padding past 5 bytes).
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64
BMP = b"BM" + b"\x00" * 64
AMR = b"#!AMR\n" + b"\x00" * 64
MP3 = b"ID3\x04\x00" + b"\x00" * 64
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
MB = 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """What the sandbox answered over HTTP."""

    status: int
    text: str

    @property
    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.text)
        return loaded

    @property
    def errcode(self) -> int:
        return int(self.json["errcode"])

    @property
    def errmsg(self) -> str:
        return str(self.json["errmsg"])


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The vendor's recipe, written from docs/vendors.md independently of the sandbox's code."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return urllib.parse.quote_plus(base64.b64encode(mac.digest()).decode())


class RobotClient:
    """Posts to the sandbox's robot webhooks the way an adapter would."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def post(self, path_and_query: str, data: bytes | str, **kwargs: Any) -> Reply:
        url = URL(self.base_url + path_and_query, encoded=True)
        # A stream, not bytes: aiohttp warns that a large bytes body could block the event loop.
        payload = io.BytesIO(data.encode() if isinstance(data, str) else data)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        async with self.session.post(url, data=payload, headers=headers, **kwargs) as response:
            return Reply(response.status, await response.text())

    async def wecom(self, body: dict[str, Any], key: str = WECOM_KEY, **kwargs: Any) -> Reply:
        return await self.post(f"/cgi-bin/webhook/send?key={key}", json.dumps(body), **kwargs)

    async def dingtalk(
        self,
        body: dict[str, Any],
        token: str = DING_TOKEN,
        *,
        timestamp_ms: int | None = None,
        sign: str | None = None,
        **kwargs: Any,
    ) -> Reply:
        query = f"access_token={token}"
        if timestamp_ms is not None:
            query += f"&timestamp={timestamp_ms}"
        if sign is not None:
            query += f"&sign={sign}"
        return await self.post(f"/robot/send?{query}", json.dumps(body), **kwargs)

    async def dingtalk_signed(self, body: dict[str, Any], *, now_ms: int | None = None) -> Reply:
        timestamp_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        return await self.dingtalk(
            body,
            DING_SIGNED_TOKEN,
            timestamp_ms=timestamp_ms,
            sign=dingtalk_sign(DING_SECRET, timestamp_ms),
        )


class AppClient:
    """Calls the sandbox's app APIs (WeCom application, DingTalk work notification) like an adapter."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def get(self, path: str, **params: str) -> Reply:
        async with self.session.get(self.base_url + path, params=params) as response:
            return Reply(response.status, await response.text())

    async def post(self, path: str, token: str | None, body: Any) -> Reply:
        params = {"access_token": token} if token is not None else {}
        data = io.BytesIO(json.dumps(body, ensure_ascii=False).encode())
        headers = {"Content-Type": "application/json; charset=utf-8"}
        async with self.session.post(
            self.base_url + path, params=params, data=data, headers=headers
        ) as response:
            return Reply(response.status, await response.text())

    async def upload(
        self,
        path: str,
        params: dict[str, str],
        content: bytes,
        filename: str = "upload.bin",
        *,
        field: str = "media",
        content_type: str = "application/octet-stream",
    ) -> Reply:
        form = aiohttp.FormData()
        form.add_field(field, io.BytesIO(content), filename=filename, content_type=content_type)
        async with self.session.post(self.base_url + path, params=params, data=form) as response:
            return Reply(response.status, await response.text())

    # -- WeCom application (docs/vendors.md, WeCom application messages) ------------------------

    async def wecom_gettoken(self, corp_id: str = CORP_ID, secret: str = CORP_SECRET) -> Reply:
        return await self.get("/cgi-bin/gettoken", corpid=corp_id, corpsecret=secret)

    async def wecom_token(self) -> str:
        reply = await self.wecom_gettoken()
        assert reply.errcode == 0, reply.text
        return str(reply.json["access_token"])

    async def wecom_send(self, body: dict[str, Any], token: str | None = None) -> Reply:
        token = token if token is not None else await self.wecom_token()
        return await self.post("/cgi-bin/message/send", token, body)

    async def wecom_recall(self, msgid: str, token: str | None = None) -> Reply:
        token = token if token is not None else await self.wecom_token()
        return await self.post("/cgi-bin/message/recall", token, {"msgid": msgid})

    async def wecom_upload(self, media_type: str, content: bytes, filename: str = "upload.bin") -> Reply:
        params = {"access_token": await self.wecom_token(), "type": media_type}
        return await self.upload("/cgi-bin/media/upload", params, content, filename)

    # -- DingTalk work notification (docs/vendors.md, DingTalk work notifications) --------------

    async def ding_gettoken(self, app_key: str = DING_APP_KEY, secret: str = DING_APP_SECRET) -> Reply:
        return await self.get("/gettoken", appkey=app_key, appsecret=secret)

    async def ding_token(self) -> str:
        reply = await self.ding_gettoken()
        assert reply.errcode == 0, reply.text
        return str(reply.json["access_token"])

    async def ding_call(self, path: str, body: dict[str, Any], token: str | None = None) -> Reply:
        token = token if token is not None else await self.ding_token()
        return await self.post(f"/topapi/message/corpconversation/{path}", token, body)

    async def ding_send(self, body: dict[str, Any], token: str | None = None) -> Reply:
        return await self.ding_call("asyncsend_v2", body, token)

    async def ding_upload(self, media_type: str, content: bytes, filename: str = "upload.bin") -> Reply:
        params = {"access_token": await self.ding_token(), "type": media_type}
        return await self.upload("/media/upload", params, content, filename)
