"""The chain of responsibility: steps run in order, any step may stop it or fail it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace

from gateway.chain.chain import Chain, Next
from gateway.chain.context import CallContext
from gateway.errors import GatewayError, NotFound


def context() -> CallContext[Any]:
    return CallContext("test", request=None)


def passing(name: str, seen: list[str]) -> Any:
    async def step(ctx: CallContext[Any], call_next: Next) -> Any:
        seen.append(f"{name}:in")
        answer = await call_next()
        seen.append(f"{name}:out")
        return answer

    step.__name__ = name
    return step


def answering(name: str, seen: list[str], answer: str = "done") -> Any:
    async def step(ctx: CallContext[Any], call_next: Next) -> Any:
        seen.append(name)
        return answer

    step.__name__ = name
    return step


async def test_steps_run_in_order_and_the_last_step_answers() -> None:
    seen: list[str] = []
    chain: Chain[str] = Chain("send", [passing("a", seen), passing("b", seen), answering("c", seen)])
    assert await chain(context()) == "done"
    assert seen == ["a:in", "b:in", "c", "b:out", "a:out"]


async def test_steps_share_the_context() -> None:
    async def first(ctx: CallContext[Any], call_next: Next) -> Any:
        ctx.message_id = "MSG1"
        ctx.attributes["checked"] = True
        return await call_next()

    async def last(ctx: CallContext[Any], call_next: Next) -> Any:
        return (ctx.message_id, ctx.attributes["checked"])

    assert await Chain("send", [first, last])(context()) == ("MSG1", True)


async def test_step_returning_without_next_stops_the_chain() -> None:
    seen: list[str] = []
    chain: Chain[str] = Chain(
        "send", [passing("a", seen), answering("stop", seen, "early"), answering("never", seen)]
    )
    assert await chain(context()) == "early"
    assert seen == ["a:in", "stop", "a:out"]


async def test_gateway_error_from_a_step_propagates_and_later_steps_do_not_run() -> None:
    seen: list[str] = []

    async def missing_account(ctx: CallContext[Any], call_next: Next) -> Any:
        raise NotFound("account 'nope' is not configured")

    chain: Chain[str] = Chain("send", [passing("a", seen), missing_account, answering("never", seen)])
    with pytest.raises(GatewayError) as caught:
        await chain(context())
    assert isinstance(caught.value, NotFound)
    assert "nope" in caught.value.message
    assert seen == ["a:in"]


async def test_last_step_calling_next_is_a_runtime_error_naming_the_chain() -> None:
    seen: list[str] = []
    chain: Chain[str] = Chain("recall", [passing("a", seen), passing("b", seen)])
    with pytest.raises(RuntimeError, match="recall"):
        await chain(context())


async def test_chain_can_run_many_times() -> None:
    seen: list[str] = []
    chain: Chain[str] = Chain("send", [passing("a", seen), answering("b", seen)])
    assert [await chain(context()) for _ in range(3)] == ["done"] * 3
    assert seen == ["a:in", "b", "a:out"] * 3


def test_chain_without_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="upload"):
        Chain("upload", [])


def traced_context() -> tuple[CallContext[Any], Any]:
    """A context whose server span records (the session's SDK provider): the chain times its steps."""
    span = trace.get_tracer("test").start_span("server")
    return CallContext("test", request=None, span=span), span


def steps_event(span: Any) -> dict[str, Any]:
    span.end()
    (event,) = [e for e in span.events if e.name == "send.steps"]
    return dict(event.attributes)


async def test_each_step_is_timed_for_its_own_work_in_one_event_on_the_server_span() -> None:
    seen: list[str] = []

    async def slow_last(ctx: CallContext[Any], call_next: Next) -> Any:
        await asyncio.sleep(0.05)
        return "done"

    ctx, span = traced_context()
    assert await Chain("send", [passing("a", seen), passing("b", seen), slow_last])(ctx) == "done"

    times = steps_event(span)
    assert list(times) == ["a_ms", "b_ms", "slow_last_ms"]
    assert times["slow_last_ms"] >= 50
    assert times["a_ms"] < times["slow_last_ms"], "a step's time leaves out the steps after it"


async def test_the_step_an_error_came_from_is_named_and_later_steps_are_absent() -> None:
    seen: list[str] = []

    async def missing_account(ctx: CallContext[Any], call_next: Next) -> Any:
        raise NotFound("account 'nope' is not configured")

    ctx, span = traced_context()
    with pytest.raises(NotFound):
        await Chain("send", [passing("a", seen), missing_account, answering("never", seen)])(ctx)

    times = steps_event(span)
    assert list(times) == ["a_ms", "missing_account_ms", "failed_step", "error.type"]
    assert (times["failed_step"], times["error.type"]) == ("missing_account", "NotFound")
