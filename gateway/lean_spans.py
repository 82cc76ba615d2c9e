"""Spans recorded without the SDK's per-attribute machinery, for the two or three every Send opens.

The SDK's span keeps its attributes in ``BoundedAttributes``: each value is cleaned through a generic
recursive check and stored under a second lock, and each span builds that mapping and two bounded
lists whether it ever holds an event or a link. Recording a Send's server and vendor spans (~40
attributes) that way cost ~0.5 M instructions in a tight loop, this way ~0.23 M; a whole Send went
from 3.33 M to 3.04 M (README, "What a Send costs"). ``LeanSpan`` keeps the same facts in a plain
dict: a str, int, float or bool goes in as it is, anything else through the SDK's own cleaning. The
span limits, sampler, id generator, span processors and exporters are the SDK's, the span handed to
them is a ``ReadableSpan`` as theirs is, and links, status and exceptions are the SDK's code. An
event with plain attributes keeps them in a read-only dict rather than the SDK's cleaned copy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from time import time_ns
from types import MappingProxyType
from typing import Any, cast

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import _clean_attribute_value, _is_non_custom_str
from opentelemetry.sdk.trace import (
    Event,
    EventBase,
    ReadableSpan,
    Span,
    Tracer,
    TracerProvider,
    _check_span_ended,
)
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

log = logging.getLogger("gateway.lean_spans")

#: The values stored as they are: a span's attribute must be one of these, or a sequence of one.
_PLAIN = frozenset((str, int, float, bool))
_UNSET = Status(StatusCode.UNSET)
#: The SDK's own guard of a span's methods (under the span's lock; a warning once it has ended), typed.
_while_open = cast(Callable[[Callable[..., None]], Callable[..., None]], _check_span_ended)


class LeanSpan(Span):
    """The SDK's span with its attributes in a dict; it is its own ``ReadableSpan`` once ended.

    Its constructor sets the fields the SDK's methods read instead of calling the SDK's, which would
    build the ``BoundedAttributes`` and lists this span avoids (``opentelemetry-sdk`` is pinned, and
    ``tests/unit/test_lean_spans.py`` compares the two spans' exported content).
    """

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        tracer: Tracer,
        kind: SpanKind,
        record_exception: bool,
        set_status_on_exception: bool,
        record_end_metrics: Callable[[], None] | None,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._resource = tracer.resource
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._span_processor = tracer.span_processor
        self._limits = tracer._span_limits
        self._sampler = tracer.sampler
        self._trace_config = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._record_end_metrics = record_end_metrics
        self._start_time: int | None = None
        self._end_time: int | None = None
        self._status = _UNSET
        self._lock = threading.Lock()
        self._attributes: dict[str, types.AnyValue] = {}
        self._dropped = 0
        self._events: Sequence[Any] = ()  # a BoundedList from the first event, as the SDK's
        self._links: Sequence[trace_api.Link] = ()

    @property
    def dropped_attributes(self) -> int:
        return self._dropped

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        with self._lock:
            if self._end_time is not None:
                log.warning("Setting attribute on ended span.")
                return
            room = self._limits.max_span_attributes
            if room == 0:
                self._dropped += len(attributes)
                return
            length = self._limits.max_span_attribute_length
            as_is = length is None  # no truncating: a plain value is stored unchecked
            stored = self._attributes
            for key, value in attributes.items():
                # The common case written out: a plain value under a new or known key, with room.
                if as_is and value.__class__ in _PLAIN and key.__class__ is str and key:
                    if key in stored:
                        del stored[key]
                    elif room is not None and len(stored) >= room:
                        self._evict_oldest()
                    stored[key] = value
                    continue
                # As the SDK cleans a mapping of attributes: an empty key is dropped, another
                # key is made a str if it has its own __str__ or __repr__.
                if not key:
                    log.warning("invalid attribute key `%s`. Dropping key from attributes.", key)
                    self._dropped += 1
                    continue
                if not isinstance(key, str):
                    if not _is_non_custom_str(key):
                        self._dropped += 1
                        continue
                    key = str(key)
                self._store(key, _clean_attribute_value(value, length))

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        with self._lock:
            if self._end_time is not None:
                log.warning("Setting attribute on ended span.")
                return
            if self._limits.max_span_attributes == 0:
                self._dropped += 1
                return
            if not key or not isinstance(key, str):
                log.warning("invalid key `%s`. must be non-empty string. Dropping key from attributes.", key)
                self._dropped += 1
                return
            self._store(key, _clean_attribute_value(value, self._limits.max_span_attribute_length))

    def _store(self, key: str, value: types.AnyValue) -> None:
        """Stores a cleaned attribute as ``BoundedAttributes`` does (the lock held): a key set again
        moves to the end, and a full span drops its oldest attribute for the new one."""
        stored = self._attributes
        if key in stored:
            del stored[key]
        elif self._limits.max_span_attributes is not None and len(stored) >= self._limits.max_span_attributes:
            self._evict_oldest()
        stored[key] = value

    def _evict_oldest(self) -> None:
        log.warning("Attributes dict is full. Dropping the oldest key-value pair from attributes.")
        del self._attributes[next(iter(self._attributes))]
        self._dropped += 1

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        """An event whose attributes are all plain, under non-empty str keys, and within the limits
        keeps them in a read-only copy: what the SDK's immutable ``BoundedAttributes`` would hold,
        without its cleaning each one (the chain's ``<chain>.steps`` event has one per step).
        Anything else goes the SDK's way."""
        limits = self._limits
        if (
            attributes
            and limits.max_attribute_length is None
            and (limits.max_event_attributes is None or len(attributes) <= limits.max_event_attributes)
            and all(k.__class__ is str and k and v.__class__ in _PLAIN for k, v in attributes.items())
        ):
            self._add_event(Event(name, MappingProxyType(dict(attributes)), timestamp))
        else:
            super().add_event(name, attributes, timestamp)

    # The lists come with their first item.
    @_while_open
    def _add_event(self, event: EventBase) -> None:
        if not isinstance(self._events, BoundedList):
            self._events = BoundedList(self._limits.max_events)
        self._events.append(event)

    @_while_open
    def _add_link(self, link: trace_api.Link) -> None:
        if not isinstance(self._links, BoundedList):
            self._links = BoundedList(self._limits.max_links)
        self._links.append(link)

    def start(self, start_time: int | None = None, parent_context: context_api.Context | None = None) -> None:
        with self._lock:
            if self._start_time is not None:
                log.warning("Calling start() on a started span.")
                return
            self._start_time = start_time if start_time is not None else time_ns()
        self._span_processor.on_start(self, parent_context=parent_context)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            if self._end_time is not None:
                log.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
        if self._record_end_metrics:
            self._record_end_metrics()
        self._span_processor._on_ending(self)
        # Ended, it no longer changes: the processors get the span itself, not a copy of it.
        self._span_processor.on_end(self)

    def _readable_span(self) -> ReadableSpan:
        return self


class LeanTracer(Tracer):
    """The SDK's tracer, making ``LeanSpan``s: the same sampling, ids and trace flags."""

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        links = links or ()
        current = trace_api.get_current_span(context).get_span_context()
        if not self._is_enabled():
            return NonRecordingSpan(context=current)
        parent: SpanContext | None = current
        if current is None or not current.is_valid:
            parent = None
            trace_id = self.id_generator.generate_trace_id()
            random_trace_id = self.id_generator.is_trace_id_random()
        else:
            trace_id = current.trace_id
            random_trace_id = current.trace_flags.random_trace_id
        sampling = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        flags = TraceFlags.SAMPLED if sampling.decision is Decision.RECORD_AND_SAMPLE else TraceFlags.DEFAULT
        if random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id,
            self.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=sampling.trace_state,
        )
        record_end_metrics = self._tracer_metrics.start_span(parent, sampling.decision)
        if sampling.decision is Decision.DROP:
            return NonRecordingSpan(context=span_context)
        span = LeanSpan(
            name,
            span_context,
            parent,
            self,
            kind,
            record_exception,
            set_status_on_exception,
            record_end_metrics,
        )
        if sampling.attributes:  # the sampler's result carries the caller's attributes, as in the SDK
            span.set_attributes(sampling.attributes)
        for link in links:
            span.add_link(link.context, link.attributes)
        span.start(start_time=start_time, parent_context=context)
        return span


class LeanTracerProvider(TracerProvider):
    """The SDK's provider whose tracers make ``LeanSpan``s."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace_api.Tracer:
        tracer = super().get_tracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )
        # The SDK builds its tracer in get_tracer with no hook for the class; LeanTracer adds no
        # field, so the one it built (and caches) becomes one. A disabled SDK's no-op stays as it is.
        if type(tracer) is Tracer:
            tracer.__class__ = LeanTracer
        return tracer
