"""Fixtures for driving the sandbox over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from gateway.sandbox import SandboxServer, SandboxState

from .harness import (
    CORP_ID,
    CORP_SECRET,
    DING_AGENT_ID,
    DING_APP,
    DING_APP_KEY,
    DING_APP_SECRET,
    DING_KEYWORD_TOKEN,
    DING_SECRET,
    DING_SIGNED_TOKEN,
    DING_TOKEN,
    KEYWORDS,
    WECOM_AGENT_ID,
    WECOM_APP,
    WECOM_KEY,
    AppClient,
    RobotClient,
)


@pytest.fixture
def state() -> SandboxState:
    sandbox_state = SandboxState()
    sandbox_state.add_wecom_robot("ops", WECOM_KEY)
    sandbox_state.add_dingtalk_robot("alerts", DING_TOKEN)
    sandbox_state.add_dingtalk_robot("signed", DING_SIGNED_TOKEN, secret=DING_SECRET)
    sandbox_state.add_dingtalk_robot("keywords", DING_KEYWORD_TOKEN, keywords=KEYWORDS)
    sandbox_state.add_wecom_app(WECOM_APP, CORP_ID, CORP_SECRET, WECOM_AGENT_ID, unlicensed=("zhaoliu",))
    sandbox_state.add_dingtalk_app(DING_APP, DING_APP_KEY, DING_APP_SECRET, DING_AGENT_ID)
    return sandbox_state


@pytest_asyncio.fixture
async def sandbox(state: SandboxState) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(state) as server:
        yield server


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def robots(sandbox: SandboxServer, http: aiohttp.ClientSession) -> RobotClient:
    return RobotClient(http, sandbox.url)


@pytest.fixture
def apps(sandbox: SandboxServer, http: aiohttp.ClientSession) -> AppClient:
    return AppClient(http, sandbox.url)
