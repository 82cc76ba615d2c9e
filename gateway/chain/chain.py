"""The chain of responsibility: an ordered list of ``async def step(ctx, call_next)``.

A step may stop the chain (return an answer or raise a typed error) or pass on with
``await call_next()``. The last step answers without calling next.

Each step's own time (before ``call_next`` plus after it returns, not the rest of the chain) is
recorded on the RPC's server span as one event, ``<chain>.steps``, with ``<step>_ms`` for each step
that ran, in order; when a step raised, ``failed_step`` and ``error.type`` name it and its error.
Spans per step would nest, each covering the rest of the call, so none would say which step was slow.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from gateway.chain.context import CallContext

ResponseT = TypeVar("ResponseT")
Next = Callable[[], Awaitable[Any]]
Step = Callable[[CallContext[Any], Next], Awaitable[Any]]


class Chain(Generic[ResponseT]):
    def __init__(self, name: str, steps: Sequence[Step]) -> None:
        if not steps:
            raise ValueError(f"chain {name} has no steps")
        self.name = name
        self.steps = tuple(steps)
        self._names = tuple(getattr(s, "__name__", type(s).__name__) for s in self.steps)
        self._event = f"{name}.steps"
        self._keys = tuple(f"{step}_ms" for step in self._names)

    async def __call__(self, ctx: CallContext[Any]) -> ResponseT:
        span = ctx.span
        if not span.is_recording():  # a trace not sampled: the steps are not even timed
            result: ResponseT = await self._run(0, ctx)
            return result
        # One event, not a span or an event per step: over 10 steps it costs ~50 µs of CPU, an event
        # per step ~130, sibling spans ~330 (scripts/chain_trace_cost.py), and keeps the trace small.
        timings = _Timings(len(self.steps))
        try:
            result = await self._timed(0, ctx, timings)
        except BaseException:
            timings.record(span, self._event, self._keys, failed=True)
            raise
        timings.record(span, self._event, self._keys, failed=False)
        return result

    async def _run(self, index: int, ctx: CallContext[Any]) -> Any:
        if index == len(self.steps):
            raise RuntimeError(f"chain {self.name}: the last step called next")
        return await self.steps[index](ctx, lambda: self._run(index + 1, ctx))

    async def _timed(self, index: int, ctx: CallContext[Any], timings: _Timings) -> Any:
        if index == len(self.steps):
            raise RuntimeError(f"chain {self.name}: the last step called next")
        started = time.perf_counter_ns()
        timings.reached = index
        inner = 0

        async def call_next() -> Any:
            nonlocal inner
            entered = time.perf_counter_ns()
            try:
                return await self._timed(index + 1, ctx, timings)
            finally:
                inner += time.perf_counter_ns() - entered

        try:
            return await self.steps[index](ctx, call_next)
        except BaseException as error:
            if timings.error is None:  # the innermost step the error passed through: where it began
                timings.error = (index, type(error).__name__)
            raise
        finally:
            timings.own[index] = time.perf_counter_ns() - started - inner

    def __repr__(self) -> str:
        return f"Chain({self.name}: {' -> '.join(self._names)})"


class _Timings:
    """Each step's own nanoseconds for one call, put on the span as one event at its end."""

    __slots__ = ("error", "own", "reached")

    def __init__(self, steps: int) -> None:
        self.own = [0] * steps
        self.reached = -1
        self.error: tuple[int, str] | None = None

    def record(self, span: trace.Span, event: str, keys: Sequence[str], *, failed: bool) -> None:
        attributes: dict[str, AttributeValue] = {
            keys[index]: round(self.own[index] / 1e6, 3) for index in range(self.reached + 1)
        }
        if failed and self.error is not None:
            attributes["failed_step"] = keys[self.error[0]].removesuffix("_ms")
            attributes["error.type"] = self.error[1]
        span.add_event(event, attributes)
