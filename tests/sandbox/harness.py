"""Shared pieces for the sandbox tests: credentials, a robot webhook client, DingTalk signing."""

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
    """The vendor's recipe, written from vendor-apis.md independently of the sandbox's code."""
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
