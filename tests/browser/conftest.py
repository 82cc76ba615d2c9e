"""One Chromium per session (Debian's, driven by Playwright), and per test a sandbox with a real
gateway in front of it (real Redis), the inbox page open in a fresh browser context.

Browser downloads are impossible here, so Playwright never installs a browser: it launches the
system's Chromium (`apt-get install chromium`; `.ci/run` does it) by its path. Everything runs in
the session's event loop, which the browser's connection is bound to.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from gateway.sandbox import SandboxServer, SandboxState
from tests.conftest import Gateway, configured, gateway_config, running_gateway, seed_sandbox

CHROMIUM = Path(os.environ.get("NOTIFY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FOUND = CHROMIUM.exists()
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TRACE_URL = "http://localhost:16686/trace/{trace_id}"
"""A Jaeger-style trace UI template: each message links to its gateway trace through it."""

expect.set_options(timeout=5_000)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_FOUND:
        reason = f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set NOTIFY_TEST_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium refuses its own sandbox.
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        await launched.close()


@dataclass
class Inbox:
    """A sandbox with a gateway in front of it, and the inbox page open on it."""

    sandbox: SandboxServer
    gateway: Gateway
    page: Page
    errors: list[str] = field(default_factory=list)

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    @property
    def url(self) -> str:
        return f"{self.sandbox.url}/"


@pytest_asyncio.fixture(loop_scope="session")
async def inbox(browser: Browser, redis_url: str) -> AsyncIterator[Inbox]:
    state = SandboxState()
    seed_sandbox(state)
    namespace = f"notify-browser-{uuid.uuid4().hex[:12]}"
    async with SandboxServer(state, trace_url=TRACE_URL) as sandbox:
        config = configured(
            gateway_config(sandbox.url, timeout=5.0), token_store=redis_url, key_namespace=namespace
        )
        async with running_gateway(config, state) as gateway:
            context = await browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
            page = await context.new_page()
            opened = Inbox(sandbox, gateway, page)
            page.on("pageerror", lambda error: opened.errors.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: opened.errors.append(message.text) if message.type == "error" else None,
            )
            await page.goto(opened.url)
            await expect(page.locator("#live")).to_have_text("live")
            try:
                yield opened
            finally:
                await context.close()
    assert opened.errors == [], "the page logged errors"


def screenshot_path(name: str) -> Path:
    """Where a screenshot goes (build/screenshots, gitignored); printed so a run shows it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    print(f"screenshot: {path}")
    return path
