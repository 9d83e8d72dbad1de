"""The OpenAPI document: valid per a maintained validator, in step with the routes, and the
live responses match the schemas it publishes."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
from aiohttp import web
from openapi_spec_validator import validate
from redis.asyncio import Redis
from test_http_support import api_client, bury, make_broker

from engine import dead, undo
from engine.http.context import CTX
from engine.http.routes import ROUTES
from engine.http.server import build_app
from engine.http.validation import TASK_FIELDS


def _doc(redis: Redis, prefix: str, max_batch: int = 7) -> dict[str, Any]:
    app = build_app(make_broker(redis, prefix), max_batch=max_batch, fail_fast=False)
    return orjson.loads(app[CTX].openapi_json)


def test_document_is_valid_and_bodies_are_closed(redis: Redis, prefix: str) -> None:
    doc = _doc(redis, prefix)
    validate(doc)  # openapi-spec-validator: OpenAPI 3.1 rules and JSON Schema 2020-12
    schemas = doc["components"]["schemas"]
    for name in ("TaskRequest", "BatchRequest", "RequeueRequest"):
        assert schemas[name]["additionalProperties"] is False
    assert schemas["BatchRequest"]["properties"]["tasks"]["maxItems"] == 7
    assert set(schemas["TaskRequest"]["properties"]) == set(TASK_FIELDS)
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    unavailable = doc["components"]["responses"]["Unavailable"]
    assert "Retry-After" in unavailable["headers"]


def _validator(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator of component `name`, resolving $refs within the document."""
    root = {"$defs": doc["components"]["schemas"], **doc["components"]["schemas"][name]}
    text = orjson.dumps(root).decode().replace("#/components/schemas/", "#/$defs/")
    return jsonschema.Draft202012Validator(orjson.loads(text))


def test_published_limits_are_the_enforced_ones(redis: Redis, prefix: str) -> None:
    """What the document refuses the server refuses, and the other way round (no drift)."""
    doc = _doc(redis, prefix)
    task = _validator(doc, "TaskRequest")
    for body in [
        {"name": "x", "timeout": 0},
        {"name": "x", "timeout": 8 * 24 * 3600},
        {"name": "x", "delay": -1},
        {"name": "x", "delay": 1e308},
        {"name": "x", "max_retries": 1001},
        {"name": "x", "max_retries": True},
        {"name": "x", "eta": 1e12},
        {"name": "x", "colour": "red"},
    ]:
        assert not task.is_valid(body), body
    for body in [{"name": "x", "timeout": 0.5, "delay": 0, "max_retries": 1000, "eta": None}]:
        assert task.is_valid(body), body


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
    assert registered == documented == {(r.method.lower(), r.path) for r in ROUTES}


async def test_live_responses_match_their_schemas(redis: Redis, prefix: str) -> None:
    """Call every JSON route for real and validate each body against the published schema."""
    broker = make_broker(redis, prefix)
    dead_id = await bury(broker, "boom", "ValueError: nope")
    doomed = await bury(broker, "boom", "ValueError: again")
    held = await bury(broker, "boom", "ValueError: held")
    token = await undo.new_undo(broker)
    await dead.delete_dead(broker, "jobs", [held], token)
    async with api_client(broker) as api:
        doc = await (await api.get("/v1/openapi.json")).json()
        created = await api.post("/v1/tasks", json={"name": "x", "queue": "jobs", "eta": 1})
        task_id = (await created.json())["id"]
        calls: list[tuple[str, str, Any]] = [
            ("POST", "/v1/tasks", {"name": "x", "delay": 30, "queue": "jobs"}),
            ("POST", "/v1/tasks/batch", {"tasks": [{"name": "x"}, {"name": "y"}]}),
            ("GET", f"/v1/tasks/{task_id}", None),
            ("GET", f"/v1/tasks/{dead_id}?queue=jobs", None),
            ("GET", f"/v1/tasks/{task_id}?wait=0.05", None),
            ("POST", f"/v1/tasks/{task_id}/cancel", None),
            ("GET", "/v1/queues", None),
            ("GET", "/v1/schedules", None),
            ("POST", "/v1/queues/jobs/pause", None),
            ("POST", "/v1/queues/jobs/resume", None),
            ("GET", "/v1/queues/jobs/diagnosis", None),
            ("GET", "/v1/dead?limit=5", None),
            ("GET", "/v1/dead/groups", None),
            ("GET", "/v1/workers", None),
            ("GET", "/v1/audit?limit=5", None),
            ("GET", "/v1/stats", None),
            ("GET", "/healthz", None),
            ("GET", "/readyz", None),
            ("POST", "/v1/dead/requeue", {"ids": [dead_id]}),
            ("DELETE", "/v1/dead/nope", None),
            ("DELETE", f"/v1/dead/{doomed}", None),
            ("POST", "/v1/dead/restore", {"undo": token}),
            ("POST", "/v1/tasks", {"name": "x", "timeout": 0}),
        ]
        checked = set()
        for method, path, body in calls:
            resp = await api.request(method, path, json=body)
            bare = path.split("?")[0]
            route = next(
                r for r in ROUTES if r.method == method and _matches(r.path, bare)
            )
            op = doc["paths"][route.path][method.lower()]
            spec = op["responses"][str(resp.status)]
            if "$ref" in spec:
                spec = doc["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
            name = spec["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            _validator(doc, name).validate(await resp.json())
            checked.add((route.method, route.path))
    json_routes = {(r.method, r.path) for r in ROUTES if r.reply is not None}
    assert json_routes <= checked, json_routes - checked


def _matches(template: str, path: str) -> bool:
    parts, wanted = path.split("/"), template.split("/")
    return len(parts) == len(wanted) and all(
        w.startswith("{") or w == p for w, p in zip(wanted, parts, strict=True)
    )
