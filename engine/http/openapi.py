"""The OpenAPI 3.1 document, generated from the route table and the contract's types."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from engine.http import contract
from engine.http.routes import Route

_REF = "#/components/schemas/{name}"
_RESP = "#/components/responses/"
_ERRORS = {
    400: ("BadRequest", "malformed JSON, wrong types, unknown fields, or a "
          "queue/priority/name the engine refuses"),
    401: ("Unauthorized", "missing or wrong bearer token"),
    404: ("NotFound", "no such task or dead letter"),
    410: ("Gone", "the restore window of that delete has ended"),
    413: ("PayloadTooLarge", "body over the size limit or batch over the item limit"),
    422: ("Unprocessable", "the arguments do not fit the handler's signature (checked when the "
          "serving process has the task registered)"),
    503: ("Unavailable", "Redis is unavailable; retry after Retry-After"),
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _parameters(route: Route, components: dict[str, Any]) -> list[dict[str, Any]]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{([^}]+)}", route.path)
    ]
    if route.query is not None:
        schema = components[route.query.__name__]
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            # Query values are text: show the non-null type only (absent means null).
            alternatives = prop.get("anyOf")
            if alternatives:
                prop = next(a for a in alternatives if a.get("type") != "null")
            if "description" in prop:
                param["description"] = prop["description"]
            param["schema"] = {k: v for k, v in prop.items() if k != "description"}
            params.append(param)
    return params


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    if route.reply is not None:
        ok = _json({"$ref": _REF.format(name=route.reply.__name__)}, route.summary)
    else:
        schema = {"type": "string"} if route.content_type == "text/plain" else {"type": "object"}
        ok = {"description": route.summary, "content": {route.content_type: {"schema": schema}}}
    statuses = () if route.public else (401, 503)
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "responses": {
            str(route.ok_status): ok,
            **{str(s): {"$ref": _RESP + _ERRORS[s][0]} for s in sorted({*statuses, *route.errors})},
        },
    }
    params = _parameters(route, components)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(name=route.body.__name__)}}
            },
        }
    if route.public:
        op["security"] = []
    return op


def build_openapi(
    routes: Sequence[Route], *, max_batch: int, max_body_bytes: int
) -> dict[str, Any]:
    """The document served at /v1/openapi.json; batch limits follow `max_batch`."""
    types = sorted(
        {t for r in routes for t in (r.reply, r.body, r.query) if t is not None}
        | {contract.ErrorReply},
        key=lambda t: t.__name__,
    )
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    # The one limit that is a server setting rather than a constant of the contract.
    components["BatchRequest"]["properties"]["tasks"]["maxItems"] = max_batch
    ids = components["RequeueRequest"]["properties"]["ids"]
    next(a for a in ids["anyOf"] if a.get("type") == "array")["maxItems"] = max_batch
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    for query in {r.query for r in routes if r.query is not None}:
        del components[query.__name__]  # documented as parameters, not as a body
    error = {"$ref": _REF.format(name="ErrorReply")}
    responses = {name: _json(error, text) for name, text in _ERRORS.values()}
    responses["Unavailable"]["headers"] = {
        "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Spool HTTP API",
            "version": "1",
            "description": "Enqueue and operate Spool task queues. Bodies are limited to "
            f"{max_body_bytes} bytes and batches to {max_batch} items. "
            "When the server runs with a token, every route except "
            "/healthz needs `Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
            "responses": responses,
        },
    }
