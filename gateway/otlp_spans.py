"""Finished spans as OTLP ExportTraceServiceRequest wire bytes, and the OTLP/gRPC exporter that sends them.

Hand-written because the library's encoder, which builds protobuf objects attribute by attribute,
is the largest Python cost of a traced Send: 105-120 µs of CPU per Send (its two spans, batches of
512) against 22-30 µs here, measured side by side on the same spans. It runs in the batch
processor's thread, but on the gateway's GIL and CPU: ~8% of a Send's instructions. The SDK's and
our own span classes are read by field rather than property, cached attributes carry their tag, and
the request is joined once: 96k -> 77k instructions per span of a Send (README, "What a Send costs").

The output parses to the message ``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``
builds from the same spans (tests/unit/test_otlp_spans.py holds the two side by side): the same
grouping by resource then scope, in first-seen order, and the same fields. An attribute whose value
the library cannot encode (a type it does not know, an int outside int64, a string that is not
UTF-8) is logged and left out, as the library does. What repeats from span to span is cached as
encoded bytes, within fixed bounds: see ``SpanEncoder``.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from gateway.lean_spans import LeanSpan

log = logging.getLogger("gateway.otlp_spans")

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT32_MAX = (1 << 32) - 1
_UINT64_MASK = (1 << 64) - 1
_SMALL_VARINTS = tuple(bytes((n,)) for n in range(0x80))
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

# Span.kind (field 6) as the library maps the SDK's kinds; an unknown kind is a KeyError there too.
_KINDS = {
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}
# Spans whose fields the encoder reads directly rather than through their properties.
_READ_BY_FIELD = frozenset((ReadableSpan, LeanSpan))
# Span.flags (field 16, fixed32) and Link.flags (field 6): "has is_remote", and "is remote".
_LOCAL = 0x100
_REMOTE = 0x300
_SPAN_FLAGS = {False: b"\x85\x01" + _pack_fixed32(_LOCAL), True: b"\x85\x01" + _pack_fixed32(_REMOTE)}
_LINK_FLAGS = {False: b"\x35" + _pack_fixed32(_LOCAL), True: b"\x35" + _pack_fixed32(_REMOTE)}

# The tag byte of each repeated attributes field, per containing message.
_SPAN_ATTRIBUTE = b"\x4a"  # Span.attributes = 9
_EVENT_ATTRIBUTE = b"\x1a"  # Span.Event.attributes = 3
_LINK_ATTRIBUTE = b"\x22"  # Span.Link.attributes = 4
_RESOURCE_ATTRIBUTE = b"\x0a"  # Resource.attributes = 1
_SCOPE_ATTRIBUTE = b"\x1a"  # InstrumentationScope.attributes = 3
_KVLIST_VALUE = b"\x0a"  # KeyValueList.values = 1


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(body: bytes) -> bytes:
    """Length prefix and body: a length-delimited field after its tag."""
    return _varint(len(body)) + body


def _uint32(tag: bytes, n: int) -> bytes:
    """A uint32 field, left out when zero; out of range raises ValueError, as protobuf does."""
    if not n:
        return b""
    if not 0 <= n <= _UINT32_MAX:
        raise ValueError(f"Value out of range: {n}")
    return tag + _varint(n)


# Span.status (field 15) with no description: its code alone (field 3, left out when UNSET).
_STATUS_CODE_ONLY = {code: b"\x7a" + _delimited(_uint32(b"\x18", code.value)) for code in StatusCode}


def _utf8(text: Any) -> bytes:
    """A string field's bytes; protobuf takes UTF-8 bytes for a string field as well as str."""
    if isinstance(text, str):
        return text.encode("utf-8")
    if isinstance(text, bytes):
        text.decode("utf-8")
        return bytes(text)
    raise TypeError(f"{text!r} has type {type(text).__name__}, but expected one of: bytes, str")


def _string(tag: bytes, text: Any) -> bytes:
    """A proto3 string field: left out when None or empty."""
    if text is None:
        return b""
    encoded = _utf8(text)
    return tag + _delimited(encoded) if encoded else b""


def _any_value(value: Any) -> bytes:
    """An AnyValue's body, by the library's ``_encode_value`` rules and in its order of checks."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return b"\x0a" + _delimited(value.encode("utf-8"))
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"Value out of range: {value}")
        return b"\x18" + _varint(value & _UINT64_MASK)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return b"\x3a" + _delimited(bytes(value))
    if isinstance(value, Sequence):
        items = b"".join([b"\x0a" + _delimited(_any_value(item)) for item in value])
        return b"\x2a" + _delimited(items)
    if isinstance(value, Mapping):
        pairs = b"".join([_KVLIST_VALUE + _delimited(_key_value(_utf8(str(k)), v)) for k, v in value.items()])
        return b"\x32" + _delimited(pairs)
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: bytes, value: Any) -> bytes:
    """A KeyValue's body: the key (left out when empty, as proto3 does) and the AnyValue, always present."""
    return (b"\x0a" + _delimited(key) if key else b"") + b"\x12" + _delimited(_any_value(value))


class _Key:
    """An attribute key's encoded bytes, and its str and int values' encoded KeyValues, each after the
    containing message's tag and the KeyValue's length, ready to append.

    ``values`` holds exact str and int values only: a bool equals 0 or 1 and would share their
    entry, so bools have their own two encodings. ``full`` is set once the key holds as many
    values as a key may, and it caches no more (a message id, a duration in ms).
    """

    __slots__ = ("false", "field", "float_head", "full", "true", "values")

    def __init__(self, tag: bytes, field: bytes) -> None:
        self.field = field
        self.values: dict[object, bytes] = {}
        self.full = False
        self.false = tag + _delimited(field + b"\x12\x02\x10\x00")
        self.true = tag + _delimited(field + b"\x12\x02\x10\x01")
        # KeyValue(key, AnyValue(double_value)): the key, value tag, AnyValue length 9, its tag; then 8 bytes.
        self.float_head = tag + _varint(len(field) + 11) + field + b"\x12\x09\x21"


class SpanEncoder:
    """Encodes batches of finished spans, caching what repeats between them, with bounded memory.

    Cached, as encoded bytes: attribute keys; the KeyValue of a (key, str or int value) pair, at
    most ``values_per_key`` distinct values per key (a key past that caches no more values) and
    ``max_entries`` keys and values in all (past that the cache starts again, empty); span and
    event names, at most ``max_entries``. Keys, names and values longer than ``max_bytes`` encoded
    are never cached, so each cache holds a few times ``max_entries`` x ``max_bytes`` at most
    (a few MiB by default). Also the encoded resource and scope of the last ``max_parts``
    distinct Resource and InstrumentationScope objects (the SDK's are immutable). Floats are
    packed each time.
    A lock serialises encoding: the BatchSpanProcessor's thread and a flush may export at once.
    """

    def __init__(
        self, *, values_per_key: int = 64, max_entries: int = 4096, max_bytes: int = 256, max_parts: int = 64
    ) -> None:
        self._values_per_key = values_per_key
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._max_parts = max_parts
        self._lock = threading.Lock()
        # Per containing message's tag, as the cached bytes start with it; the dicts stay, emptied.
        self._keys: dict[bytes, dict[str, _Key]] = {
            tag: {} for tag in (_SPAN_ATTRIBUTE, _EVENT_ATTRIBUTE, _LINK_ATTRIBUTE, _RESOURCE_ATTRIBUTE)
        }
        self._entries = 0  # keys plus cached values
        self._names: dict[str, bytes] = {}
        # id() -> (the object, kept alive so its id is not reused while cached; its encoded bytes)
        self._resources: dict[int, tuple[Any, bytes, bytes]] = {}  # Resource
        self._scopes: dict[int, tuple[Any, bytes, bytes]] = {}  # InstrumentationScope or None

    def cache_size(self) -> tuple[int, int]:
        """(keys and values, names) cached now: what the bounds hold."""
        return self._entries, len(self._names)

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        with self._lock:
            return self._request(spans)

    def _request(self, spans: Sequence[ReadableSpan]) -> bytes:
        # Grouped as the library does, by Resource then InstrumentationScope equality, first seen
        # first. Resource hashes by dumping its attributes to JSON, so each distinct object is
        # hashed once per batch and its spans found by identity after that.
        resources: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
        by_identity: dict[tuple[int, int], list[bytes]] = {}
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope or None
            group = by_identity.get((id(resource), id(scope)))
            if group is None:
                scopes = resources.setdefault(resource, {})
                group = scopes.setdefault(scope, [])
                by_identity[(id(resource), id(scope))] = group
            group.append(b"\x12" + _delimited(self._span(span)))  # ScopeSpans.spans = 2

        # One join at the end, the lengths summed ahead: joining each level and prefixing its length
        # copied the whole batch (a few hundred KiB) six times more.
        out: list[bytes] = []
        for resource, scopes in resources.items():
            resource_field, resource_schema = self._resource(resource)
            head = len(out)
            out.append(b"")  # the resource's tag and length, once known
            out.append(resource_field)
            size = len(resource_field) + len(resource_schema)
            for scope, encoded_spans in scopes.items():
                scope_field, scope_schema = self._scope(scope)
                scope_size = len(scope_field) + len(scope_schema) + sum(map(len, encoded_spans))
                scope_head = b"\x12" + _varint(scope_size)  # ResourceSpans.scope_spans = 2
                out.append(scope_head)
                out.append(scope_field)
                out.extend(encoded_spans)
                out.append(scope_schema)
                size += len(scope_head) + scope_size
            out.append(resource_schema)
            out[head] = b"\x0a" + _varint(size)  # ExportTraceServiceRequest.resource_spans = 1
        return b"".join(out)

    def _span(self, span: ReadableSpan) -> bytes:
        if span.__class__ in _READ_BY_FIELD:
            # The properties of these classes only read these fields (opentelemetry-sdk is pinned;
            # the tests encode both kinds): a dozen property calls per span saved.
            context, parent, name, kind = span._context, span._parent, span._name, span._kind
            start, end, status = span._start_time, span._end_time, span._status
            attributes, events, links = span._attributes, span._events, span._links
            dropped_attributes = span.dropped_attributes
            dropped_events = events.dropped if isinstance(events, BoundedList) else 0
            dropped_links = links.dropped if isinstance(links, BoundedList) else 0
        else:
            context, parent, name, kind = span.get_span_context(), span.parent, span.name, span.kind
            start, end, status = span.start_time, span.end_time, span.status
            attributes, events, links = span.attributes, span.events, span.links
            dropped_attributes, dropped_events = span.dropped_attributes, span.dropped_events
            dropped_links = span.dropped_links
        assert context is not None  # the library reads it unchecked too
        parts = [
            b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        ]
        trace_state = context.trace_state
        if trace_state:
            parts.append(_string(b"\x1a", ",".join([f"{k}={v}" for k, v in trace_state.items()])))
        if parent:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        if name:
            parts.append(b"\x2a" + self._name(name))
        parts.append(_KINDS[kind])
        if start:
            parts.append(b"\x39" + _pack_fixed64(start))
        if end:
            parts.append(b"\x41" + _pack_fixed64(end))
        if attributes:
            self._attributes(parts, _SPAN_ATTRIBUTE, attributes)
        if dropped_attributes:
            parts.append(_uint32(b"\x50", dropped_attributes))
        for event in events:
            parts.append(b"\x5a" + _delimited(self._event(event)))
        if dropped_events:
            parts.append(_uint32(b"\x60", dropped_events))
        for link in links:
            parts.append(b"\x6a" + _delimited(self._link(link)))
        if dropped_links:
            parts.append(_uint32(b"\x70", dropped_links))
        if status is not None:
            if status.description:
                body = _string(b"\x12", status.description) + _uint32(b"\x18", status.status_code.value)
                parts.append(b"\x7a" + _delimited(body))
            else:
                parts.append(_STATUS_CODE_ONLY[status.status_code])
        parts.append(_SPAN_FLAGS[bool(parent and parent.is_remote)])
        return b"".join(parts)

    def _event(self, event: Any) -> bytes:
        if event.__class__ is Event:  # its properties only read these fields, as a span's do
            timestamp, name, attributes = event._timestamp, event._name, event._attributes
            dropped = attributes.dropped if isinstance(attributes, BoundedAttributes) else 0
        else:
            timestamp, name = event.timestamp, event.name
            attributes, dropped = event.attributes, event.dropped_attributes
        parts = []
        if timestamp:
            parts.append(b"\x09" + _pack_fixed64(timestamp))
        if name:
            parts.append(b"\x12" + self._name(name))
        if attributes:
            self._attributes(parts, _EVENT_ATTRIBUTE, attributes)
        if dropped:
            parts.append(_uint32(b"\x20", dropped))
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        # The library leaves the linked context's trace_state out, so this does too.
        context = link.context
        parts = [
            b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        ]
        self._attributes(parts, _LINK_ATTRIBUTE, link.attributes)
        parts.append(_uint32(b"\x28", link.dropped_attributes))
        parts.append(_LINK_FLAGS[bool(context and context.is_remote)])
        return b"".join(parts)

    def _resource(self, resource: Resource) -> tuple[bytes, bytes]:
        """ResourceSpans.resource (always present) and ResourceSpans.schema_url."""
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1], cached[2]
        parts: list[bytes] = []
        self._attributes(parts, _RESOURCE_ATTRIBUTE, resource.attributes)
        field = b"\x0a" + _delimited(b"".join(parts))
        schema = _string(b"\x1a", resource.schema_url)
        return self._remember(self._resources, resource, field, schema)

    def _scope(self, scope: InstrumentationScope | None) -> tuple[bytes, bytes]:
        """ScopeSpans.scope (always present, empty for no scope) and ScopeSpans.schema_url."""
        cached = self._scopes.get(id(scope))
        if cached is not None and cached[0] is scope:
            return cached[1], cached[2]
        if scope is None:
            field, schema = b"\x0a\x00", b""
        else:
            parts = [_string(b"\x0a", scope.name), _string(b"\x12", scope.version)]
            self._attributes(parts, _SCOPE_ATTRIBUTE, scope.attributes)
            field = b"\x0a" + _delimited(b"".join(parts))
            schema = _string(b"\x1a", scope.schema_url)
        return self._remember(self._scopes, scope, field, schema)

    def _remember(
        self, cache: dict[int, tuple[Any, bytes, bytes]], part: Any, field: bytes, schema: bytes
    ) -> tuple[bytes, bytes]:
        """Keeps a resource's or scope's encoding by the object's identity, ``max_parts`` at most."""
        if len(cache) >= self._max_parts:
            cache.clear()
        cache[id(part)] = (part, field, schema)
        return field, schema

    def _name(self, name: str) -> bytes:
        """A span's or event's name, length-prefixed, for the caller's tag."""
        encoded = self._names.get(name)
        if encoded is None:
            encoded = _delimited(_utf8(name))
            if type(name) is str and len(encoded) <= self._max_bytes:
                if len(self._names) >= self._max_entries:
                    self._names.clear()
                self._names[name] = encoded
        return encoded

    def _attributes(self, parts: list[bytes], tag: bytes, attributes: Mapping[Any, Any] | None) -> None:
        """Appends each attribute as ``tag`` and a length-prefixed KeyValue. One that cannot be encoded
        is logged and left out, as the library does: a bad value must not cost the whole batch."""
        if not attributes:
            return
        keys = self._keys[tag]
        for key, value in attributes.items():
            try:
                entry = keys.get(key) if type(key) is str else None
                if entry is None:
                    entry = self._key(key, tag)
                kind = type(value)
                if kind is str or kind is int:
                    if entry is None:
                        encoded = tag + _delimited(_key_value(_utf8(key), value))
                    else:
                        encoded = entry.values.get(value) or self._value(entry, tag, value)
                elif kind is float and entry is not None:
                    encoded = entry.float_head + _pack_double(value)
                elif kind is bool and entry is not None:
                    encoded = entry.true if value else entry.false
                else:
                    field = entry.field if entry is not None else b"\x0a" + _delimited(_utf8(key))
                    encoded = tag + _delimited(field + b"\x12" + _delimited(_any_value(value)))
            except Exception:
                log.exception("span attribute %r left out of the OTLP export", key)
                continue
            parts.append(encoded)

    def _key(self, key: Any, tag: bytes) -> _Key | None:
        """The key's cache entry, new; None for a key not cached (encoded each time, if it can be)."""
        if type(key) is not str:
            return None
        encoded = key.encode("utf-8")
        if len(encoded) > self._max_bytes:
            return None
        entry = _Key(tag, b"\x0a" + _delimited(encoded) if encoded else b"")
        self._make_room()
        self._keys[tag][key] = entry
        self._entries += 1
        return entry

    def _value(self, entry: _Key, tag: bytes, value: str | int) -> bytes:
        """``tag`` and the length-prefixed KeyValue of the key and a str or int value, cached if the
        bounds allow (which count the KeyValue, not the tag)."""
        if isinstance(value, str):
            any_value = b"\x0a" + _delimited(value.encode("utf-8"))
        else:
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise ValueError(f"Value out of range: {value}")
            any_value = b"\x18" + _varint(value & _UINT64_MASK)
        encoded = tag + _delimited(entry.field + b"\x12" + _delimited(any_value))
        if not entry.full and len(encoded) - len(tag) <= self._max_bytes:
            if len(entry.values) >= self._values_per_key:
                entry.full = True
                self._entries -= len(entry.values)
                entry.values.clear()
                return encoded
            if self._make_room():
                return encoded  # the cache started again: this key's entry is gone
            entry.values[value] = encoded
            self._entries += 1
        return encoded

    def _make_room(self) -> bool:
        """Empties the keys and values cache when it is full; True if it did."""
        if self._entries < self._max_entries:
            return False
        for keys in self._keys.values():
            keys.clear()
        self._entries = 0
        return True


_encoder = SpanEncoder()


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ExportTraceServiceRequest of ``spans``, as the library's encoder would build it."""
    return _encoder.encode(spans)


def _unchanged(request: bytes) -> bytes:
    return request


class _TraceServiceBytesStub:
    """TraceService's stub whose Export takes the request already serialized."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=_unchanged,
            response_deserializer=ExportTraceServiceResponse.FromString,
            _registered_method=True,
        )


class GrpcSpanExporter(OTLPSpanExporter):
    """The library's OTLP/gRPC span exporter, sending requests our encoder serialized.

    Everything else is the library's: endpoint, TLS, headers, compression, timeout, retries with
    backoff, the channel re-created on UNAVAILABLE, its own metrics. The two overrides below reach
    into protected members of opentelemetry-exporter-otlp-proto-grpc (``_stub``,
    ``_initialize_channel_and_stub``, ``_translate_data``), pinned in pyproject.toml; the tests
    that export through a real server catch a change in them.
    """

    def _initialize_channel_and_stub(self) -> None:
        # The mixin builds its client as self._stub(self._channel), here and on reconnection.
        self._stub = _TraceServiceBytesStub
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        # The mixin hands this as ``request`` to self._client.Export, whose serializer passes bytes on.
        return encode_spans(data)
