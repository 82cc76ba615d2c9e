"""HTTP request -> request message, response message -> JSON: protobuf's JSON mapping, nothing custom.

Path variables, query parameters and the body fill one request message as AIP-127 and
grpc-gateway do: the path binds its fields; the body binds every other field (``body: "*"``) or
one; query parameters bind what is left (``states=...&states=...``, ``labels[team]=payments``,
``info.account=...``). A request that does not fit is refused with INVALID_ARGUMENT naming the
field, before the RPC is called.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.errors import InvalidArgument, Violation
from gateway.http.routes import Route

#: Message types a query parameter may set as one string (their JSON form is a string).
_STRING_MESSAGES = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
_MAP_KEY = re.compile(r"^(\w+)\[([^\]]*)\]$")
_AT = re.compile(r' at "?\w+((?:\.\w+)*)"?')
_FAILED = re.compile(r"Failed to parse (\w+) field: ")
_NO_FIELD = re.compile(r'has no field named "([^"]+)"')
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
IDEMPOTENCY_FIELD = "idempotency_key"


def request_message(
    route: Route,
    message_class: type[Message],
    path_params: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes | None,
) -> Message:
    """The RPC's request from one HTTP request; InvalidArgument naming the field if it does not fit."""
    message = message_class()
    if route.body and body is not None:  # None: the caller reads the body itself (an upload)
        _parse_body(route, message, body)
    for name in path_params:
        _clear(message, name)  # the path wins over the same field in the body
    descriptor = _descriptor(message)
    bound = _query_fields(route, descriptor, query)
    for name, value in path_params.items():
        _set(bound, descriptor, name.split("."), [value], name)
    _parse_dict(bound, message, where="query")
    return message


def apply_idempotency_key(message: Message, header: str | None) -> None:
    """The ``Idempotency-Key`` header fills the request's key when the body leaves it empty.

    A body and a header that disagree are refused: which one the caller meant cannot be known,
    and guessing wrong would deliver twice or refuse a retry.
    """
    if header is None or IDEMPOTENCY_FIELD not in message.DESCRIPTOR.fields_by_name:
        return
    current = getattr(message, IDEMPOTENCY_FIELD)
    if not current:
        setattr(message, IDEMPOTENCY_FIELD, header)
    elif current != header:
        raise InvalidArgument(
            [Violation(IDEMPOTENCY_FIELD, "differs from the Idempotency-Key header; send one of them")]
        )


def to_json(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping (lowerCamelCase names, defaults left out), as gRPC clients see it."""
    return json_format.MessageToDict(message)


def _parse_body(route: Route, message: Message, body: bytes) -> None:
    if not body.strip():
        return  # an empty body is the empty message
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument([Violation("body", f"is not valid JSON: {exc}")]) from None
    if route.body == "*":
        if not isinstance(value, dict):
            raise InvalidArgument([Violation("body", "must be a JSON object")])
        _parse_dict(value, message, where="body")
    else:
        _parse_dict({route.body: value}, message, where="body")


def _parse_dict(value: dict[str, Any], message: Message, *, where: str) -> None:
    if not value:
        return
    parsed = type(message)()
    try:
        json_format.ParseDict(value, parsed)
    except json_format.ParseError as exc:
        raise InvalidArgument([_violation(str(exc), _descriptor(message), where)]) from None
    message.MergeFrom(parsed)


def _violation(text: str, descriptor: Descriptor, where: str) -> Violation:
    """Names the field json_format refused, from its error text (which has no structured form)."""
    first = text.split("\n", 1)[0]
    at = _AT.search(first)
    unknown = _NO_FIELD.search(first)
    path = [part for part in at.group(1).split(".") if part] if at is not None else _FAILED.findall(first)
    if unknown is not None:
        path.append(unknown.group(1))
        description = "no such field"
    else:
        description = _FAILED.sub("", _AT.sub("", first)).rstrip(". ") or "is not valid"
    field = ".".join(_resolve(descriptor, [_CAMEL.sub(r"_\1", part).lower() for part in path]))
    return Violation(field or where, description)


def _resolve(descriptor: Descriptor | None, parts: list[str]) -> list[str]:
    """Fills in a level json_format's text skips (``message.content`` is ``message.text.content``)."""
    names: list[str] = []
    for part in parts:
        field = descriptor.fields_by_name.get(part) if descriptor is not None else None
        if field is None and descriptor is not None:
            for child in descriptor.fields:
                inner = child.message_type
                if inner is not None and part in inner.fields_by_name:
                    names.append(child.name)
                    field = inner.fields_by_name[part]
                    break
        names.append(part)
        descriptor = field.message_type if field is not None else None
    return names


def _query_fields(route: Route, descriptor: Descriptor, query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as a dict for ParseDict: only fields neither the path nor the body binds."""
    grouped: dict[str, list[str]] = {}
    for name, value in query:
        grouped.setdefault(name, []).append(value)
    bound: dict[str, Any] = {}
    for name, values in grouped.items():
        map_key = _MAP_KEY.match(name)
        path = name.split(".") if map_key is None else [*map_key.group(1).split("."), map_key.group(2)]
        if route.body == "*":
            raise InvalidArgument([Violation(name, "the body carries every field; no query parameters")])
        proto_path = _proto_path(descriptor, path, name)
        top = proto_path[0]
        if top == route.body or ".".join(proto_path) in route.variables:
            raise InvalidArgument([Violation(name, "is bound by the path or the body")])
        _set(bound, descriptor, proto_path, values, name, map_key=map_key is not None)
    return bound


def _proto_path(descriptor: Descriptor, path: list[str], name: str) -> list[str]:
    """The path in proto field names, accepting JSON names (``pageSize``) as grpc-gateway does."""
    names: list[str] = []
    current: Descriptor | None = descriptor
    for i, part in enumerate(path):
        if current is None:
            raise InvalidArgument([Violation(name, "no such field")])
        found = current.fields_by_name.get(part) or current.fields_by_camelcase_name.get(part)
        if found is None:
            raise InvalidArgument([Violation(name, "no such field")])
        names.append(found.name)
        if found.message_type is not None and found.message_type.GetOptions().map_entry:
            if i + 2 != len(path):
                raise InvalidArgument([Violation(name, "a map is set as name[key]=value")])
            return [*names, path[i + 1]]
        current = found.message_type
    return names


def _set(
    bound: dict[str, Any],
    descriptor: Descriptor,
    path: list[str],
    values: list[str],
    name: str,
    *,
    map_key: bool = False,
) -> None:
    node = bound
    current = descriptor
    for part in path[:-1]:
        inner = current.fields_by_name[part].message_type
        assert inner is not None, "_proto_path walks only through messages"
        if inner.GetOptions().map_entry:
            node.setdefault(part, {})[path[-1]] = values[-1]
            return
        node = node.setdefault(part, {})
        current = inner
    field = current.fields_by_name[path[-1]]
    if map_key or (field.message_type is not None and field.message_type.GetOptions().map_entry):
        raise InvalidArgument([Violation(name, "a map is set as name[key]=value")])
    converted = [_scalar(field, value, name) for value in values]
    if _is_repeated(field):
        node[path[-1]] = converted
    elif len(converted) > 1:
        raise InvalidArgument([Violation(name, "is given more than once")])
    else:
        node[path[-1]] = converted[0]


def _descriptor(message: Message) -> Descriptor:
    return cast(Descriptor, message.DESCRIPTOR)  # upb's Descriptor class is the same type at run time


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _scalar(field: FieldDescriptor, value: str, name: str) -> Any:
    """A query parameter's string as the JSON value ParseDict expects for the field's type."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise InvalidArgument([Violation(name, "must be true or false")])
    if field.type == FieldDescriptor.TYPE_ENUM and value.lstrip("-").isdigit():
        return int(value)
    if field.message_type is not None and field.message_type.full_name not in _STRING_MESSAGES:
        raise InvalidArgument([Violation(name, "is a message; set its fields (name.field=value)")])
    return value


def _clear(message: Message, path: str) -> None:
    *parents, last = path.split(".")
    node = message
    for part in parents:
        if not node.HasField(part):
            return
        node = getattr(node, part)
    node.ClearField(last)
