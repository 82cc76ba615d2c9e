"""The sandbox runs on a real port and is assembled from one list of vendor channels."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web

from gateway.sandbox import SandboxServer, SandboxState, build_app
from gateway.sandbox.app import VENDOR_CHANNELS

from .harness import CORP_SECRET, WECOM_KEY, AppClient, RobotClient


@pytest.mark.asyncio
async def test_port_zero_takes_a_free_port_and_url_says_which(state: SandboxState) -> None:
    async with SandboxServer(state) as first, SandboxServer(state) as second:
        assert first.port != second.port
        assert first.url == f"http://127.0.0.1:{first.port}"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{second.url}/_sandbox/robots") as response,
        ):
            assert response.status == 200


@pytest.mark.asyncio
async def test_start_and_stop_can_be_called_directly(state: SandboxState) -> None:
    server = SandboxServer(state)
    with pytest.raises(RuntimeError):
        _ = server.url

    await server.start()
    url = server.url
    await server.stop()
    await server.stop()

    with pytest.raises(RuntimeError):
        _ = server.url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/_sandbox/robots")


@pytest.mark.asyncio
async def test_a_new_vendor_channel_plugs_in_as_one_routes_factory(state: SandboxState) -> None:
    def fake_vendor(_: SandboxState) -> list[web.RouteDef]:
        async def hello(_: web.Request) -> web.Response:
            return web.json_response({"errcode": 0, "errmsg": "ok"})

        return [web.get("/fake/hello", hello)]

    runner = web.AppRunner(build_app(state, vendors=(*VENDOR_CHANNELS, fake_vendor)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/fake/hello") as response:
                assert (await response.json())["errcode"] == 0
            async with session.get(f"http://127.0.0.1:{port}/_sandbox/robots") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_the_access_log_never_contains_a_webhook_key(
    robots: RobotClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        await robots.wecom({"msgtype": "text", "text": {"content": "hi"}})

    assert "/cgi-bin/webhook/send" in caplog.text
    assert WECOM_KEY not in caplog.text


@pytest.mark.asyncio
async def test_the_access_log_never_contains_an_app_secret_or_token(
    apps: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        token = await apps.wecom_token()
        await apps.post("/cgi-bin/message/send", token, {})

    assert "/cgi-bin/gettoken" in caplog.text
    assert CORP_SECRET not in caplog.text
    assert token not in caplog.text
