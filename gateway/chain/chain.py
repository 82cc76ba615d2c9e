"""The chain of responsibility: an ordered list of ``async def step(ctx, call_next)``.

A step may stop the chain (return an answer or raise a typed error) or pass on with
``await call_next()``. The last step answers without calling next.

Each step's own time (before ``call_next`` plus after it returns, not the rest of the chain) is
recorded on the RPC's server span as one event, ``<chain>.steps``, with ``<step>_ms`` for each step
that ran, in order; when a step raised, ``failed_step`` and ``error.type`` name it and its error.
Spans per step would nest, each covering the rest of the call, so none would say which step was slow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter_ns
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
            result: ResponseT = await _Run(self, ctx).first()
            return result
        # One event, not a span or an event per step: over 10 steps it costs ~50 µs of CPU, an event
        # per step ~130, sibling spans ~330 (scripts/chain_trace_cost.py), and keeps the trace small.
        run = _TimedRun(self, ctx)
        try:
            result = await run.first()
        except BaseException:
            run.record(span, failed=True)
            raise
        run.record(span, failed=False)
        return result

    def past_the_end(self) -> RuntimeError:
        return RuntimeError(f"chain {self.name}: the last step called next")

    def __repr__(self) -> str:
        return f"Chain({self.name}: {' -> '.join(self._names)})"


class _Run:
    """One call's walk down the chain: ``next`` is the ``call_next`` every step is given.

    One object per call, not a closure per step: ``index`` is the step now running, and a step's
    ``call_next`` runs the one after it, whichever step asks (only the running one can).
    """

    __slots__ = ("chain", "ctx", "index", "next", "steps")

    def __init__(self, chain: Chain[Any], ctx: CallContext[Any]) -> None:
        self.chain = chain
        self.ctx = ctx
        self.steps = chain.steps
        self.index = 0
        self.next = self.call_next  # bound once: every step gets the same callable

    def first(self) -> Awaitable[Any]:
        return self.steps[0](self.ctx, self.next)

    async def call_next(self) -> Any:
        index = self.index + 1
        if index == len(self.steps):
            raise self.chain.past_the_end()
        self.index = index
        try:
            return await self.steps[index](self.ctx, self.next)
        finally:
            self.index = index - 1


class _TimedRun:
    """A ``_Run`` that also times each step's own work for the ``<chain>.steps`` event.

    The clock is read once as the call moves from one step to another (into the next step, or
    back out to the one before), and the time since the last reading is charged to the step that
    was running: two readings a step, where a timer wrapped around each step would take four.
    """

    __slots__ = ("chain", "ctx", "error", "index", "mark", "next", "own", "reached", "steps")

    def __init__(self, chain: Chain[Any], ctx: CallContext[Any]) -> None:
        self.chain = chain
        self.ctx = ctx
        self.steps = chain.steps
        self.own = [0] * len(chain.steps)
        self.index = 0
        self.reached = 0
        self.error: tuple[int, str] | None = None
        self.next = self.call_next
        self.mark = 0

    async def first(self) -> Any:
        self.mark = perf_counter_ns()
        try:
            return await self.steps[0](self.ctx, self.next)
        except BaseException as error:
            if self.error is None:  # the innermost step the error passed through: where it began
                self.error = (0, type(error).__name__)
            raise
        finally:
            self.own[0] += perf_counter_ns() - self.mark

    async def call_next(self) -> Any:
        before = self.index
        index = before + 1
        if index == len(self.steps):
            raise self.chain.past_the_end()
        now = perf_counter_ns()
        self.own[before] += now - self.mark
        self.own[index] = 0  # a step called again (a step calling next twice) counts its last run
        self.mark = now
        self.index = index
        if index > self.reached:
            self.reached = index
        try:
            return await self.steps[index](self.ctx, self.next)
        except BaseException as error:
            if self.error is None:
                self.error = (index, type(error).__name__)
            raise
        finally:
            now = perf_counter_ns()
            self.own[index] += now - self.mark
            self.mark = now
            self.index = before

    def record(self, span: trace.Span, *, failed: bool) -> None:
        """Puts the steps that ran, each with its own milliseconds, on the span as one event."""
        keys = self.chain._keys
        own = self.own
        attributes: dict[str, AttributeValue] = {
            keys[index]: round(own[index] / 1e6, 3) for index in range(self.reached + 1)
        }
        if failed and self.error is not None:
            attributes["failed_step"] = keys[self.error[0]].removesuffix("_ms")
            attributes["error.type"] = self.error[1]
        span.add_event(self.chain._event, attributes)
