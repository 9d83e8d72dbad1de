"""The OpenAPI document: structurally valid, and in step with the registered routes."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from redis.asyncio import Redis
from test_http_support import api_client, make_broker

from engine.http.server import build_app

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if "$ref" in node else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def check_openapi(doc: dict[str, Any]) -> None:
    """The rules of OpenAPI 3.x this document must keep (a structural validator)."""
    assert re.fullmatch(r"3\.[01]\.\d+", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    for req in doc["security"]:
        assert set(req) <= set(schemes)
    for ref in _refs(doc):
        _resolve(doc, ref)
    op_ids: set[str] = set()
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        templated = set(re.findall(r"{([^}]+)}", path))
        for method, op in item.items():
            assert method in METHODS, (path, method)
            assert op["operationId"] not in op_ids
            op_ids.add(op["operationId"])
            assert op["responses"], (path, method)
            for status, resp in op["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d|default", status)
                resp = _resolve(doc, resp["$ref"]) if "$ref" in resp else resp
                assert resp["description"]
            params = op.get("parameters", [])
            in_path = {p["name"] for p in params if p["in"] == "path"}
            assert in_path == templated, (path, method)
            for p in params:
                assert p["in"] in {"path", "query", "header", "cookie"}
                assert p["in"] != "path" or p["required"] is True
                assert "schema" in p
            if "requestBody" in op:
                assert op["requestBody"]["content"]["application/json"]["schema"]


def test_document_is_valid_and_bodies_are_closed(redis: Redis, prefix: str) -> None:
    doc = orjson.loads(orjson.dumps(_doc(redis, prefix)))  # plain JSON, nothing Python-only
    check_openapi(doc)
    schemas = doc["components"]["schemas"]
    for name in ("TaskRequest", "BatchRequest"):
        assert schemas[name]["additionalProperties"] is False
    for variant in schemas["RequeueRequest"]["oneOf"]:
        assert variant["additionalProperties"] is False
    assert schemas["BatchRequest"]["properties"]["tasks"]["maxItems"] == 7
    from engine.http.validation import TASK_FIELDS

    assert set(schemas["TaskRequest"]["properties"]) == set(TASK_FIELDS)
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    unavailable = doc["components"]["responses"]["Unavailable"]
    assert "Retry-After" in unavailable["headers"]


def _doc(redis: Redis, prefix: str) -> dict[str, Any]:
    from engine.http.context import CTX

    app = build_app(make_broker(redis, prefix), max_batch=7, fail_fast=False)
    return orjson.loads(app[CTX].openapi_json)


def _routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD beside every GET
            continue
        out.add((route.method.lower(), route.resource.canonical))  # type: ignore[union-attr]
    return out


async def test_every_route_is_documented_and_vice_versa(redis: Redis, prefix: str) -> None:
    async with api_client(make_broker(redis, prefix)) as api:
        doc = await (await api.get("/v1/openapi.json")).json()
        registered = _routes(api.app)  # type: ignore[arg-type]
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert registered == documented
    assert len(registered) == 16
