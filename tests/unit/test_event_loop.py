"""Which event loop `serve` and `worker` run on (server.event_loop, --event-loop)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from gateway.event_loop import EventLoopUnavailable, loop_factory, resolve


def test_auto_is_uvloop_where_it_is_installed() -> None:
    assert resolve("auto") == "uvloop"
    assert resolve("uvloop") == "uvloop"
    assert resolve("asyncio") == "asyncio"


def test_without_uvloop_auto_falls_back_and_an_explicit_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: `import uvloop` raises
    assert resolve("auto") == "asyncio"
    with pytest.raises(EventLoopUnavailable, match="uvloop cannot be imported"):
        resolve("uvloop")


def test_the_factories_make_the_loop_they_name() -> None:
    with asyncio.Runner(loop_factory=loop_factory("uvloop")) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
    with asyncio.Runner(loop_factory=loop_factory("asyncio")) as runner:
        assert not isinstance(runner.get_loop(), uvloop.Loop)
