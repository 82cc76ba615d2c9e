"""The HTTP routes, read from the ``google.api.http`` rules in the service's descriptors (AIP-127).

The proto is the one place a path is written: adding a rule to an RPC adds its route here, in the
OpenAPI document and in the tests' table, with no code. Matching follows grpc-gateway: a final
``:verb`` is a custom method, so ``GET /v1/messages/ID:recall`` is the Recall route with the wrong
method (405), not GetMessage of the id "ID:recall".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

_PATTERNS = ("get", "put", "post", "delete", "patch")
_TOKEN = re.compile(r"\{[^}]*\}|[^/]+")


@dataclass(frozen=True)
class Route:
    """One binding: an HTTP method and path template for one RPC, and where its body goes."""

    rpc: MethodDescriptor
    http_method: str  # upper case, as on the wire
    template: str  # as written in the proto: /v1/messages/{message_id}:recall
    body: str  # "" (no body), "*" (every field not in the path) or one field's name
    variables: tuple[str, ...]  # field paths bound by the path, in order
    custom_verb: str
    _regex: re.Pattern[str] = field(repr=False, compare=False)

    @property
    def openapi_path(self) -> str:
        """The template with each variable as ``{field.path}``, as OpenAPI writes path parameters."""
        path = _TOKEN.sub(lambda m: _openapi_token(m.group(0)), self._path_part)
        return path + (f":{self.custom_verb}" if self.custom_verb else "")

    @property
    def _path_part(self) -> str:
        return self.template[: -len(self.custom_verb) - 1] if self.custom_verb else self.template

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The path's variables (percent-decoded) if ``raw_path`` fits this template, else None."""
        found = self._regex.fullmatch(raw_path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in zip(self.variables, found.groups(), strict=True)}


@dataclass(frozen=True)
class Matched:
    route: Route
    path_params: dict[str, str]


@dataclass(frozen=True)
class Unmatched:
    """No route for this method and path; ``allowed`` lists the methods the path has (405), if any."""

    allowed: tuple[str, ...]


class Router:
    """Every route of a service, and the one an HTTP request names."""

    def __init__(self, service: ServiceDescriptor) -> None:
        self.service = service
        self.routes = tuple(route for rpc in service.methods for route in routes_of(rpc))

    def match(self, http_method: str, raw_path: str) -> Matched | Unmatched:
        candidates = [
            (route, params) for route in self.routes if (params := route.match(raw_path)) is not None
        ]
        if any(route.custom_verb for route, _ in candidates):
            candidates = [(route, params) for route, params in candidates if route.custom_verb]
        for route, params in candidates:
            if route.http_method == http_method.upper():
                return Matched(route, params)
        return Unmatched(tuple(sorted({route.http_method for route, _ in candidates})))


def routes_of(rpc: MethodDescriptor) -> Iterator[Route]:
    """The routes of one RPC: its rule and the rule's additional_bindings."""
    options = rpc.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    for binding in (rule, *rule.additional_bindings):
        kind = binding.WhichOneof("pattern")
        if kind in _PATTERNS:
            yield _route(rpc, kind.upper(), getattr(binding, kind), binding.body)
        elif kind == "custom":
            yield _route(rpc, binding.custom.kind.upper(), binding.custom.path, binding.body)


def _route(rpc: MethodDescriptor, http_method: str, template: str, body: str) -> Route:
    """Compiles a path template (``/v1/{name=messages/*}:verb``) into a regex over the raw path."""
    path, verb = template, ""
    last = template.rsplit("/", 1)[-1]
    if ":" in last and "}" not in last.rpartition(":")[2]:
        path, _, verb = template.rpartition(":")
    variables: list[str] = []
    parts: list[str] = []
    for token in _TOKEN.findall(path):
        if token.startswith("{"):
            name, _, pattern = token[1:-1].partition("=")
            variables.append(name)
            parts.append(f"({_segments(pattern or '*')})")
        else:
            parts.append(_segments(token))
    regex = "/" + "/".join(parts) + (re.escape(":" + verb) if verb else "")
    return Route(rpc, http_method, template, body, tuple(variables), verb, re.compile(regex))


def _segments(pattern: str) -> str:
    def one(segment: str) -> str:
        if segment == "**":
            return r".+"
        if segment == "*":
            return r"[^/]+"
        return re.escape(segment)

    return "/".join(one(segment) for segment in pattern.split("/"))


def _openapi_token(token: str) -> str:
    return "{" + token[1:-1].partition("=")[0] + "}" if token.startswith("{") else token
