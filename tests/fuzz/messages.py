"""Hypothesis strategies for protobuf requests, built by walking the proto's message descriptors.

Nothing here names a request type: every field of every message is reached through its
descriptor (scalars of each type, enums, nested messages, oneofs, repeated fields, maps, and the
well-known Struct and Timestamp), so a field added to the proto is fuzzed without a change here.
Values lean towards what breaks parsers and validators: empty and huge (bounded) strings, control
characters, extreme integers, unknown enum values, Structs with wrong types, NaN, Inf and deep
nesting. ``hints`` mix realistic values into fields named in them (an account id that exists), so
cases get past the first check and reach the channel adapters and the vendor.

``wire`` turns a message into the bytes sent, and now and then breaks them the way a buggy client
or a hostile one would: truncated, a byte changed, a string field holding bytes that are not
UTF-8, a field the proto does not have, or random bytes instead of a request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import message_factory, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

Hints = Mapping[str, st.SearchStrategy[Any]]
MAX_DEPTH = 5  # nested messages below this are left empty (the proto's own nesting is shallower)
HUGE = 70_000  # characters of the longest generated string: past every vendor limit, under gRPC's 4 MB

_F = FieldDescriptor
_INT_RANGES = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}
_AWKWARD_CHARACTERS = "\x00\x01\x07\t\n\r\x1b\x7f\x85\u200b\u2028\u202e\ufeff\uffff\U0001f600警"


def strings() -> st.SearchStrategy[str]:
    """Empty, short and arbitrary, full of control characters, or huge (bounded)."""
    return st.one_of(
        st.just(""),
        st.text(max_size=24),
        st.text(alphabet=st.sampled_from(_AWKWARD_CHARACTERS), min_size=1, max_size=16),
        st.builds(
            lambda char, count: char * count,
            st.sampled_from(["x", "警", "\x00", "\n", "\U0001f600"]),
            st.integers(min_value=1_000, max_value=HUGE),
        ),
    )


def binaries() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=64),
        st.builds(
            lambda byte, count: byte * count, st.sampled_from([b"\x00", b"\xff"]), st.integers(0, HUGE)
        ),
    )


def integers(field_type: int) -> st.SearchStrategy[int]:
    low, high = _INT_RANGES[field_type]
    edges = [value for value in (low, high, 0, 1, -1, 128, 2**31 - 1, 2**31) if low <= value <= high]
    return st.one_of(st.sampled_from(edges), st.integers(min_value=low, max_value=high))


def enums(field: FieldDescriptor) -> st.SearchStrategy[int]:
    """A declared value, or any int32 (proto3 enums are open: unknown numbers decode as they are)."""
    declared = [value.number for value in field.enum_type.values]
    return st.one_of(st.sampled_from(declared), st.integers(min_value=-(2**31), max_value=2**31 - 1))


# -- google.protobuf.Struct: JSON with wrong types, NaN, Inf, nested lists --------------------

_CARD_KEYS = ["card_type", "task_id", "main_title", "card_action", "jump_list", "type", "url", "title"]
_CARD_TYPES = ["text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"]


def json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(),  # NaN, +-Inf and -0.0 included
        st.sampled_from([0.0, 1.0, 2.0**53, 1e308, math.nan, math.inf, -math.inf]),
        st.text(max_size=12),
        st.sampled_from(_CARD_TYPES),
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(_CARD_KEYS) | st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


def nested_lists(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def structs() -> st.SearchStrategy[struct_pb2.Struct]:
    fields = st.dictionaries(st.sampled_from(_CARD_KEYS) | st.text(max_size=8), json_values(), max_size=6)
    # Deeper than protobuf's parser takes (100 levels), and just within it.
    deep = st.integers(min_value=1, max_value=130).map(lambda depth: {"card_type": nested_lists(depth)})
    return st.one_of(fields, deep).map(_struct)


def _struct(fields: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(fields)
    return struct


# -- messages, from their descriptors -----------------------------------------------------------


def messages(descriptor: Descriptor, hints: Hints | None = None, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of this type with any subset of their fields set, recursively."""
    if descriptor.full_name == "google.protobuf.Struct":
        return structs()
    if descriptor.full_name == "google.protobuf.Timestamp":
        return timestamps()
    return _message(descriptor, hints or {}, depth)


def timestamps() -> st.SearchStrategy[Message]:
    """Any seconds and nanos the wire can carry, most of them outside what a Timestamp allows."""
    realistic = st.integers(min_value=0, max_value=4_102_444_800)  # 1970 to 2100
    return st.builds(
        lambda seconds, nanos: timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos),
        realistic | integers(_F.TYPE_INT64),
        st.integers(min_value=0, max_value=999_999_999) | integers(_F.TYPE_INT32),
    )


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, hints: Hints, depth: int) -> Message:
    message = message_factory.GetMessageClass(descriptor)()
    if depth > MAX_DEPTH:
        return message
    in_oneof = set()
    for oneof in descriptor.oneofs:
        in_oneof.update(field.name for field in oneof.fields)
        chosen = draw(st.none() | st.sampled_from(list(oneof.fields)))
        if chosen is not None:
            _set(message, chosen, draw(_value(chosen, hints, depth)))
    for field in descriptor.fields:
        if field.name not in in_oneof and draw(st.booleans()):
            _set(message, field, draw(_value(field, hints, depth)))
    return message


def _value(field: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    if field.is_repeated and _is_map(field):
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_single(key, hints, depth), _single(value, hints, depth), max_size=4)
    if field.is_repeated:
        return st.lists(_single(field, hints, depth), max_size=4) | st.lists(
            _single(field, hints, depth), min_size=9, max_size=12
        )  # past the vendors' counts (8 articles, 10 rows)
    return _single(field, hints, depth)


def _single(field: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    generic = _generic(field, hints, depth)
    hint = hints.get(field.name)
    return generic if hint is None else st.one_of(hint, hint, generic)  # mostly the hint


def _generic(field: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == _F.TYPE_MESSAGE:
        return messages(field.message_type, hints, depth + 1)
    if kind == _F.TYPE_STRING:
        return strings()
    if kind == _F.TYPE_BYTES:
        return binaries()
    if kind == _F.TYPE_BOOL:
        return st.booleans()
    if kind == _F.TYPE_ENUM:
        return enums(field)
    if kind == _F.TYPE_DOUBLE:
        return st.floats()
    if kind == _F.TYPE_FLOAT:
        return st.floats(width=32)
    if kind in _INT_RANGES:
        return integers(kind)
    raise AssertionError(f"{field.full_name}: field type {kind} has no strategy")


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    if field.is_repeated and _is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if value_field.type == _F.TYPE_MESSAGE:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        target.extend(value)
    elif field.type == _F.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


@st.composite
def variations(draw: st.DrawFn, seeds: list[Message], hints: Hints | None = None) -> Message:
    """A valid request with up to three of its fields, at any depth, set to generated values.

    Requests generated from nothing rarely get past the first check; changing a field or two of
    one that works reaches each later check (the channel's rules, the vendor's answer) alone.
    """
    message = draw(st.sampled_from(seeds)).__deepcopy__()
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        target = message
        while True:
            field = draw(st.sampled_from(list(target.DESCRIPTOR.fields)))
            if _can_descend(field) and draw(st.booleans()):
                target = getattr(target, field.name)
                continue
            target.ClearField(field.name)
            _set(target, field, draw(_value(field, hints or {}, depth=0)))
            break
    return message


def _can_descend(field: FieldDescriptor) -> bool:
    return (
        field.type == _F.TYPE_MESSAGE
        and not field.is_repeated
        and field.message_type.full_name not in ("google.protobuf.Struct", "google.protobuf.Timestamp")
    )


# -- the bytes on the wire -------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _string_paths(descriptor: Descriptor, depth: int = 0) -> list[list[int]]:
    """Field-number paths from this message to each string field, through singular submessages."""
    paths: list[list[int]] = []
    for field in descriptor.fields:
        if field.type == _F.TYPE_STRING:
            paths.append([field.number])
        elif field.type == _F.TYPE_MESSAGE and depth < 3:
            paths.extend([field.number, *rest] for rest in _string_paths(field.message_type, depth + 1))
    return paths


def bad_utf8(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """A string field somewhere in the message, holding bytes that are not UTF-8."""
    paths = _string_paths(descriptor)
    invalid = st.sampled_from([b"\xff", b"\xc3\x28", b"ok\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])

    def encode(path: list[int], payload: bytes) -> bytes:
        for number in reversed(path):
            payload = length_delimited(number, payload)
        return payload

    return st.builds(encode, st.sampled_from(paths), invalid) if paths else st.just(b"")


@st.composite
def wire(draw: st.DrawFn, message: Message) -> bytes:
    """The message's bytes; one case in three broken on purpose."""
    data = message.SerializeToString()
    how = draw(st.sampled_from(["intact"] * 10 + ["truncated", "byte", "utf8", "unknown", "random"]))
    if how == "truncated" and data:
        return data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]
    if how == "byte" and data:
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if how == "utf8":
        return data + draw(bad_utf8(message.DESCRIPTOR))
    if how == "unknown":
        # A field number the message does not declare, of any wire type: kept as an unknown field,
        # or refused when its wire type (3, 4: groups; 6, 7: reserved) cannot stand there.
        number = draw(st.integers(min_value=1, max_value=2**29 - 1))
        wire_type = draw(st.integers(min_value=0, max_value=7))
        return data + varint(number << 3 | wire_type) + draw(st.binary(max_size=16))
    if how == "random":
        return draw(st.binary(max_size=256))
    return data
