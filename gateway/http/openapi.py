"""An OpenAPI 3.1 document of the HTTP face, generated from the descriptors and their http rules.

Nothing is written by hand: paths come from the routes (gateway.http.routes), schemas from the
message descriptors in the proto3 JSON mapping (lowerCamelCase names, 64-bit integers and bytes as
strings, enums by name, Timestamp as RFC 3339), errors as google.rpc.Status. What the descriptors
cannot say (a body that is a file) follows from the rule: a ``bytes`` body field is the raw body.
"""

from __future__ import annotations

import importlib
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, ServiceDescriptor

from gateway.http.routes import Route, Router

Schema = dict[str, Any]
STATUS = "google.rpc.Status"
_INTEGER_32 = {
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_SINT32: "int32",
    FieldDescriptor.TYPE_SFIXED32: "int32",
    FieldDescriptor.TYPE_UINT32: "int64",  # above int32's range; still a JSON number
    FieldDescriptor.TYPE_FIXED32: "int64",
}
_INTEGER_64 = {
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_SINT64: "int64",
    FieldDescriptor.TYPE_SFIXED64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_FIXED64: "uint64",
}
#: Well-known types, as their JSON mapping writes them (a string, an object, anything).
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
}


def openapi_document(service: ServiceDescriptor, *, version: str = "v1") -> dict[str, Any]:
    """The document for every route of ``service``; its schemas are those the routes reach."""
    schemas = _Schemas(comments(service.file.name))
    paths: dict[str, dict[str, Any]] = {}
    for route in Router(service).routes:
        paths.setdefault(route.openapi_path, {})[route.http_method.lower()] = _operation(route, schemas)
    schemas.components[STATUS] = _status_schema()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": service.full_name,
            "version": version,
            "description": (
                f"The HTTP/JSON face of the gRPC service {service.full_name}, transcoded by its "
                "google.api.http rules. Bodies use protobuf's JSON mapping; errors are "
                "google.rpc.Status with the HTTP status grpc-gateway maps from the gRPC code."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "A tenant's API key"}
            },
        },
        "security": [{"apiKey": []}],
    }


def comments(proto_file: str) -> dict[str, str]:
    """The proto's comments by full name, which scripts/generate.py keeps beside the stubs.

    Python descriptors carry none; without the module (stubs from elsewhere) there are no descriptions.
    """
    module = "generated." + proto_file.removesuffix(".proto").replace("/", ".") + "_comments"
    try:
        found = importlib.import_module(module).COMMENTS
    except (ImportError, AttributeError):
        return {}
    return dict(found)


class _Schemas:
    """Component schemas by full name, each made once, so recursive messages end in a $ref."""

    def __init__(self, comments: dict[str, str]) -> None:
        self.components: dict[str, Schema] = {}
        self.comments = comments

    def described(self, schema: Schema, full_name: str) -> Schema:
        text = self.comments.get(full_name)
        return {**schema, "description": text} if text else schema

    def ref(self, descriptor: Descriptor | EnumDescriptor) -> Schema:
        name = descriptor.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name not in self.components:
            self.components[name] = {}  # placed first: a message that contains itself refers to it
            if isinstance(descriptor, EnumDescriptor):
                schema: Schema = {"type": "string", "enum": [value.name for value in descriptor.values]}
            else:
                schema = self._message(descriptor)
            self.components[name] = self.described(schema, name)
        return {"$ref": f"#/components/schemas/{name}"}

    def _message(self, descriptor: Descriptor) -> Schema:
        properties = {
            field.json_name: self.described(self.field(field), field.full_name) for field in descriptor.fields
        }
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def field(self, field: FieldDescriptor) -> Schema:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self.single(message.fields_by_name["value"])}
        if field.is_repeated:
            return {"type": "array", "items": self.single(field)}
        return self.single(field)

    def single(self, field: FieldDescriptor) -> Schema:
        if field.message_type is not None:
            return self.ref(field.message_type)
        if field.enum_type is not None:
            return self.ref(field.enum_type)
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return {"type": "string"}
        if kind == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind in _INTEGER_32:
            return {"type": "integer", "format": _INTEGER_32[kind]}
        if kind in _INTEGER_64:
            # The JSON mapping writes 64-bit integers as strings and reads either.
            return {"type": ["string", "integer"], "format": _INTEGER_64[kind]}
        return {"type": "number", "format": "float" if kind == FieldDescriptor.TYPE_FLOAT else "double"}


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    rpc = route.rpc
    operation: dict[str, Any] = {
        "operationId": rpc.name,
        "summary": f"{rpc.containing_service.full_name}.{rpc.name}",
        **({"description": schemas.comments[rpc.full_name]} if rpc.full_name in schemas.comments else {}),
        "parameters": [
            {**_parameter(name, "path", rpc.input_type, schemas), "required": True}
            for name in route.variables
        ],
    }
    bound = set(route.variables)
    if route.body != "*":
        operation["parameters"] += _query_parameters(rpc.input_type, "", bound | {route.body}, schemas)
    if route.body == "*":
        operation["requestBody"] = {
            "required": not route.variables,
            "content": {"application/json": {"schema": schemas.ref(rpc.input_type)}},
        }
    elif route.body:
        operation["requestBody"] = _field_body(route, schemas)
    answer = schemas.ref(rpc.output_type)
    if rpc.server_streaming:
        line = {
            "type": "object",
            "properties": {"result": answer, "error": {"$ref": f"#/components/schemas/{STATUS}"}},
            "description": "One JSON object per line: a result per message, or a final error.",
        }
        content = {"application/x-ndjson": {"schema": line}}
    else:
        content = {"application/json": {"schema": answer}}
    operation["responses"] = {
        "200": {"description": "OK", "content": content},
        "default": {
            "description": "An error: google.rpc.Status with details (BadRequest, ErrorInfo, RetryInfo)",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{STATUS}"}}},
        },
    }
    return operation


def _parameter(path: str, where: str, message: Descriptor, schemas: _Schemas) -> dict[str, Any]:
    descriptor: Descriptor | None = message
    field: FieldDescriptor | None = None
    for part in path.split("."):
        field = descriptor.fields_by_name[part] if descriptor is not None else None
        descriptor = field.message_type if field is not None else None
    assert field is not None, path
    return schemas.described({"name": path, "in": where, "schema": schemas.field(field)}, field.full_name)


def _query_parameters(
    message: Descriptor, prefix: str, bound: set[str], schemas: _Schemas, depth: int = 0
) -> list[dict[str, Any]]:
    """Every field a query parameter can set: scalars, repeated scalars, maps (``name[key]``)."""
    found: list[dict[str, Any]] = []
    for field in message.fields:
        name = prefix + field.name
        if name in bound:
            continue
        inner = field.message_type
        if inner is not None and inner.GetOptions().map_entry:
            found.append(
                {
                    "name": name,
                    "in": "query",
                    "style": "deepObject",
                    "explode": True,
                    "schema": schemas.field(field),
                }
            )
        elif inner is not None and inner.full_name not in _WELL_KNOWN:
            if not field.is_repeated and depth < 3:
                found += _query_parameters(inner, name + ".", bound, schemas, depth + 1)
        else:
            parameter = schemas.described(
                {"name": name, "in": "query", "schema": schemas.field(field)}, field.full_name
            )
            if field.is_repeated:
                parameter |= {"style": "form", "explode": True}
            found.append(parameter)
    return found


def _field_body(route: Route, schemas: _Schemas) -> dict[str, Any]:
    """A body bound to one field: JSON of that field, or, for a bytes field, the raw file."""
    field = route.rpc.input_type.fields_by_name[route.body]
    if field.type != FieldDescriptor.TYPE_BYTES:
        return {"required": True, "content": {"application/json": {"schema": schemas.field(field)}}}
    binary = {"type": "string", "contentMediaType": "application/octet-stream"}
    form_fields = {
        parameter["name"]: parameter["schema"]
        for parameter in _query_parameters(route.rpc.input_type, "", {route.body}, schemas)
    }
    return {
        "required": True,
        "description": (
            f"The file: the raw body (its other fields as query parameters), or the form part {route.body!r}"
        ),
        "content": {
            "application/octet-stream": {"schema": binary},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {**form_fields, route.body: binary},
                    "required": [route.body],
                },
            },
        },
    }


def _status_schema() -> Schema:
    return {
        "type": "object",
        "description": "google.rpc.Status: the gRPC code, a message for people, and typed details",
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The gRPC status code"},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "required": ["@type"],
                    "additionalProperties": True,
                },
            },
        },
    }
