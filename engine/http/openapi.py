"""The OpenAPI 3.1 document of the ingress, built from the same limits the app enforces."""

from __future__ import annotations

from typing import Any

from engine.http.openapi_schemas import schemas

_REF = "#/components/schemas/"
_RESP = "#/components/responses/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        404: "NotFound",
        413: "PayloadTooLarge",
        503: "Unavailable",
    }
    return {str(s): {"$ref": _RESP + names[s]} for s in (401, 503, *statuses)}


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    *errors: int,
    ok_status: int = 200,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {str(ok_status): ok, **_errors(*errors)},
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if params:
        op["parameters"] = params
    return op


def _param(
    name: str,
    where: str,
    description: str,
    schema: dict[str, Any] | None = None,
    required: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def build_openapi(*, max_batch: int, max_body_bytes: int) -> dict[str, Any]:
    """The document served at /v1/openapi.json."""
    queue_q = _param("queue", "query", "only this queue")
    filters = [
        queue_q,
        _param("task", "query", "exact task name"),
        _param("error", "query", "case-insensitive substring of the error"),
    ]
    ok = _json
    paths: dict[str, Any] = {
        "/v1/tasks": {
            "post": _op(
                "enqueueTask",
                "Enqueue one task",
                ok(_ref("Created"), "stored"),
                400,
                413,
                ok_status=201,
                body="TaskRequest",
            )
        },
        "/v1/tasks/batch": {
            "post": _op(
                "enqueueBatch",
                "Enqueue tasks, all or nothing",
                ok(_ref("CreatedBatch"), "all stored"),
                400,
                413,
                ok_status=201,
                body="BatchRequest",
            )
        },
        "/v1/tasks/{id}": {
            "get": _op(
                "getTask",
                "One task's state and record",
                ok(_ref("TaskInfo"), "the task"),
                400,
                404,
                params=[_param("id", "path", "task id"), queue_q],
            )
        },
        "/v1/queues": {
            "get": _op(
                "listQueues", "Every queue with depth per level", ok(_ref("QueueList"), "queues")
            )
        },
        "/v1/queues/{queue}/pause": {
            "post": _op(
                "pauseQueue",
                "Stop handing out tasks of a queue",
                ok(_ref("QueueState"), "paused"),
                400,
                params=[_param("queue", "path", "queue name")],
            )
        },
        "/v1/queues/{queue}/resume": {
            "post": _op(
                "resumeQueue",
                "Hand out tasks of a queue again",
                ok(_ref("QueueState"), "resumed"),
                400,
                params=[_param("queue", "path", "queue name")],
            )
        },
        "/v1/dead": {
            "get": _op(
                "listDead",
                "Dead letters, newest first",
                ok(_ref("DeadPage"), "a page"),
                400,
                params=[
                    *filters,
                    _param(
                        "limit",
                        "query",
                        "page size",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                    ),
                    _param("cursor", "query", "from the previous page"),
                ],
            )
        },
        "/v1/dead/groups": {
            "get": _op(
                "deadGroups",
                "Dead letters grouped by error",
                ok(_ref("DeadGroups"), "groups"),
                400,
                params=filters,
            )
        },
        "/v1/dead/requeue": {
            "post": _op(
                "requeueDead",
                "Move dead letters back to pending",
                ok(_ref("Requeued"), "how many moved"),
                400,
                413,
                body="RequeueRequest",
            )
        },
        "/v1/dead/{id}": {
            "delete": _op(
                "deleteDead",
                "Delete a dead letter for good",
                ok(_ref("Deleted"), "deleted"),
                400,
                404,
                params=[_param("id", "path", "task id"), queue_q],
            )
        },
        "/v1/workers": {
            "get": _op("listWorkers", "Live worker processes", ok(_ref("Workers"), "workers"))
        },
        "/v1/stats": {"get": _op("getStats", "Fleet metrics summary", ok(_ref("Stats"), "stats"))},
        "/metrics": {
            "get": _op(
                "getMetrics",
                "Prometheus text exposition",
                {
                    "description": "metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            )
        },
        "/healthz": {
            "get": {
                **_op(
                    "healthz", "Liveness: the process serves requests", ok(_ref("Status"), "alive")
                ),
                "security": [],
            }
        },
        "/readyz": {"get": _op("readyz", "Readiness: Redis answers", ok(_ref("Status"), "ready"))},
        "/v1/openapi.json": {
            "get": _op("openapi", "This document", ok({"type": "object"}, "OpenAPI document"))
        },
    }
    paths["/healthz"]["get"]["responses"] = {"200": ok(_ref("Status"), "alive")}
    err = _ref("Error")
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
            "schemas": schemas(max_batch),
            "responses": {
                "BadRequest": _json(
                    err,
                    "malformed JSON, wrong types, unknown fields, or a "
                    "queue/priority/name the engine refuses",
                ),
                "Unauthorized": _json(err, "missing or wrong bearer token"),
                "NotFound": _json(err, "no such task or dead letter"),
                "PayloadTooLarge": _json(
                    err, "body over the size limit or batch over the item limit"
                ),
                "Unavailable": {
                    **_json(err, "Redis is unavailable; retry after Retry-After"),
                    "headers": {
                        "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
                    },
                },
            },
        },
    }
