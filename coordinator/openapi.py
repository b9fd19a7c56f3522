"""The OpenAPI 3 description served at /openapi.json, generated from aiohttp's route table.

Paths and methods come from the router itself; each handler carries what the router cannot know
(summary, bodies, responses) through the `@operation` decorator, next to its code. A route whose
handler has no description makes generation fail, so the document cannot silently fall behind.
Schemas come from the same pydantic models the handlers validate with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import maestro

from .models import ErrorBody

_REF = "#/components/schemas/{model}"
_ATTR = "__openapi_operations__"
_GROUP = re.compile(r"\(\?P<(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)>(?P<alts>[A-Za-z0-9_|-]+)\)")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]
PATH_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "tenant": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
    "hash": {
        "type": "string",
        "pattern": "^[0-9a-f]{64}$",
        "description": "sha256 hex: of the blob (cas), or the action digest (ac)",
    },
}
BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}

H = TypeVar("H", bound=Callable[..., Any])


class UndocumentedRouteError(RuntimeError):
    """A route's handler has no `@operation` for one of its methods."""


@dataclass(frozen=True, slots=True)
class Response:
    description: str
    model: type[BaseModel] | None = None
    """JSON body of this model; None with `content` for other media, or no body."""
    content: Mapping[str, Any] | None = None
    headers: Mapping[str, Any] | None = None


def err(description: str) -> Response:
    return Response(description, ErrorBody)


AUTH_ERRORS: Mapping[str, Response] = {
    "401": err("Missing, invalid, expired or revoked credentials, or a retired signing key."),
    "403": err("The credential's tenant or role does not allow this."),
}


@dataclass(frozen=True, slots=True)
class Operation:
    """What the route table cannot say about one method of a route.

    `summary`, `operation_id` and descriptions are format strings over the path's literal
    alternatives (a route `{kind:cas|ac}` is documented as one path per kind, with `{kind}` and
    `{noun}` = `nouns[kind]`) and `{max_blob_bytes}`."""

    summary: str
    operation_id: str
    responses: Mapping[str, Response]
    auth: bool = True
    body: type[BaseModel] | Mapping[str, Any] | None = None
    body_required: bool = True
    parameters: Sequence[Mapping[str, Any]] = ()
    nouns: Mapping[str, str] = field(default_factory=dict)


def public_document(
    summary: str, operation_id: str, description: str, media_type: str, schema: Mapping[str, Any]
) -> Operation:
    """An unauthenticated GET whose only answer is one document (metrics, this description)."""
    content = {media_type: {"schema": schema}}
    return Operation(summary, operation_id, {"200": Response(description, content=content)}, False)


def operation(**by_method: Operation) -> Callable[[H], H]:
    """Attach the OpenAPI description of a handler, per HTTP method (`get=Operation(...)`)."""

    def attach(handler: H) -> H:
        setattr(handler, _ATTR, {m.upper(): op for m, op in by_method.items()})
        return handler

    return attach


def _operations(route: web.AbstractRoute) -> Mapping[str, Operation] | None:
    ops: Mapping[str, Operation] | None = getattr(route.handler, _ATTR, None)
    return ops


def _variants(resource: web.AbstractResource) -> list[tuple[str, dict[str, str]]]:
    """The resource's canonical path, once per combination of literal alternatives."""
    paths: list[tuple[str, dict[str, str]]] = [(resource.canonical, {})]
    pattern = resource.get_info().get("pattern")
    if pattern is None:
        return paths
    for group in _GROUP.finditer(pattern.pattern):
        name = group["name"]
        paths = [
            (path.replace("{" + name + "}", alt), {**values, name: alt})
            for path, values in paths
            for alt in group["alts"].split("|")
        ]
    return paths


def _content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}


def _render(
    op: Operation, path: str, values: Mapping[str, str], context: Mapping[str, Any]
) -> dict[str, Any]:
    words = {**context, **values}
    if op.nouns:
        words["noun"] = op.nouns[next(v for v in values.values() if v in op.nouns)]
    responses: dict[str, Any] = {}
    for status, resp in op.responses.items():
        rendered: dict[str, Any] = {"description": resp.description.format(**words)}
        if resp.model is not None:
            rendered["content"] = _content(resp.model)
        elif resp.content is not None:
            rendered["content"] = dict(resp.content)
        if resp.headers:
            rendered["headers"] = dict(resp.headers)
        responses[status] = rendered
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict(PATH_PARAMS.get(name, {"type": "string"})),
        }
        for name in re.findall(r"\{([^}]+)\}", path)
    ]
    for param in params:  # the description belongs beside the schema in OpenAPI
        description = param["schema"].pop("description", None)
        if description:
            param["description"] = description
    out: dict[str, Any] = {
        "operationId": op.operation_id.format(**words),
        "summary": op.summary.format(**words),
        "responses": responses,
    }
    if op.auth:
        out["security"] = SECURITY
    if params or op.parameters:
        out["parameters"] = [*params, *map(dict, op.parameters)]
    if op.body is not None:
        content = (
            _content(op.body)
            if isinstance(op.body, type) and issubclass(op.body, BaseModel)
            else dict(op.body)
        )
        out["requestBody"] = {"required": op.body_required, "content": content}
    return out


def _models(operations: Sequence[Operation]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {ErrorBody.__name__: ErrorBody}
    for op in operations:
        if isinstance(op.body, type) and issubclass(op.body, BaseModel):
            found[op.body.__name__] = op.body
        for resp in op.responses.values():
            if resp.model is not None:
                found[resp.model.__name__] = resp.model
    return sorted(found.values(), key=lambda m: m.__name__)


def openapi_document(router: web.UrlDispatcher, *, max_blob_bytes: int) -> dict[str, Any]:
    """The document for every route of `router`; UndocumentedRouteError if one lacks a
    description. A HEAD that aiohttp adds beside a GET is left out, as the GET describes it."""
    paths: dict[str, dict[str, Any]] = {}
    used: list[Operation] = []
    context = {"max_blob_bytes": max_blob_bytes}
    for route in router.routes():
        resource = route.resource
        if resource is None:
            continue
        ops = _operations(route) or {}
        if route.method == "HEAD" and "GET" in ops and "HEAD" not in ops:
            continue
        methods = sorted(ops) if route.method == "*" else [route.method]
        if not methods or any(m not in ops for m in methods):
            raise UndocumentedRouteError(
                f"{route.method} {resource.canonical}: its handler has no @operation for it"
            )
        for path, values in _variants(resource):
            for method in methods:
                paths.setdefault(path, {})[method.lower()] = _render(
                    ops[method], path, values, context
                )
                used.append(ops[method])
    _, schemas = models_json_schema([(m, "validation") for m in _models(used)], ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Maestro coordinator",
            "version": maestro.__version__,
            "description": "Bazel-HTTP-cache-compatible remote cache with tenants and tokens. "
            "Methods other than GET, HEAD and PUT on cache paths answer 405.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(schemas.get("$defs", {})),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "any user name; the token (or API key) as the password",
                },
            },
        },
    }
