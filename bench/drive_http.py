"""Floor B: the vendor calls the gateway would make, made straight from aiohttp, no gateway.

Alternates the two calls of the gateway scenario: a POST to the DingTalk robot webhook and a
POST to the WeCom app's message/send with an access token fetched once up front. Each is made
the way the gateway's transport makes it (one pooled ClientSession, compact UTF-8 JSON, query
parameters, the body read as text and parsed), so what this process spends per call is the
least a Python asyncio client spends on one vendor call. That client-side CPU is floor B's
"CPU per call": it is the part of a Send the gateway process itself has to do. The sandbox's
CPU (the vendor's side) is reported too, but belongs to no one's floor.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bench.messages import dingtalk_robot_body, encode_json, wecom_app_body
from bench.phases import measure_async
from bench.spec import LoadResult, LoadSpec

POOL_SIZE = 100  # as the gateway's AiohttpTransport
TIMEOUT = aiohttp.ClientTimeout(total=10.0)
_JSON = {"Content-Type": "application/json; charset=utf-8"}


async def drive(spec: LoadSpec) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=POOL_SIZE, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
        app = spec.wecom_app
        token_answer = await _call(
            session,
            "GET",
            f"{spec.sandbox_url}/cgi-bin/gettoken",
            {"corpid": app["corp_id"], "corpsecret": app["corp_secret"]},
            None,
        )
        if token_answer.get("errcode") != 0:
            raise RuntimeError(f"floor B: gettoken refused: {token_answer}")
        robot = (f"{spec.sandbox_url}/robot/send", {"access_token": spec.dingtalk_token})
        wecom = (f"{spec.sandbox_url}/cgi-bin/message/send", {"access_token": token_answer["access_token"]})
        wecom_body = wecom_app_body(int(app["agent_id"]))

        async def send(i: int) -> str | None:
            if i % 2 == 0:
                answer = await _call(session, "POST", *robot, dingtalk_robot_body(f"floor-b-{i}"))
            else:
                answer = await _call(session, "POST", *wecom, wecom_body)
            if answer.get("errcode") != 0:
                return f"errcode {answer.get('errcode')}: {answer.get('errmsg')}"
            return None

        return await measure_async(spec, send)


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, params: dict[str, str], body: Any
) -> dict[str, Any]:
    data = encode_json(body).encode() if body is not None else None
    async with session.request(
        method, url, params=params, data=data, headers=_JSON if data else None, timeout=TIMEOUT
    ) as response:
        text = await response.text(errors="replace")
    try:
        value = json.loads(text)
    except ValueError:
        return {"errcode": f"HTTP {response.status}", "errmsg": text[:200]}
    return value if isinstance(value, dict) else {"errcode": "not a JSON object"}
