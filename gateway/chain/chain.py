"""The chain of responsibility: an ordered list of ``async def step(ctx, call_next)``.

A step may stop the chain (return an answer or raise a typed error) or pass on with
``await call_next()``. The last step answers without calling next.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from gateway.chain.context import CallContext
from gateway.telemetry import current_span

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

    async def __call__(self, ctx: CallContext[Any]) -> ResponseT:
        result: ResponseT = await self._run(0, ctx)
        return result

    async def _run(self, index: int, ctx: CallContext[Any]) -> Any:
        if index == len(self.steps):
            raise RuntimeError(f"chain {self.name}: the last step called next")
        step = self.steps[index]
        # One span per step; they nest, so the trace shows how far a call got and where time went.
        with current_span(f"{self.name}.{self._names[index]}"):
            return await step(ctx, lambda: self._run(index + 1, ctx))

    def __repr__(self) -> str:
        names = " -> ".join(getattr(s, "__name__", type(s).__name__) for s in self.steps)
        return f"Chain({self.name}: {names})"
