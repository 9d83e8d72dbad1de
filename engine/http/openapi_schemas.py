"""Component schemas of the OpenAPI document (request bodies closed to unknown fields)."""

from __future__ import annotations

from typing import Any

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def schemas(max_batch: int) -> dict[str, Any]:
    """Component schemas; batch limits follow `max_batch`."""
    nullable_num = {"type": ["number", "null"]}
    obj = {"type": "object"}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "additionalProperties": False,
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "TaskRequest": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "args": {"type": ["array", "null"]},
                "kwargs": {"type": ["object", "null"]},
                "queue": {"type": ["string", "null"], "default": "default"},
                "priority": {
                    "type": ["string", "null"],
                    "default": "default",
                    "description": "a level of the queue (default: high, default, low)",
                },
                "max_retries": {"type": ["integer", "null"], "minimum": 0, "maximum": 1000},
                "timeout": {
                    **nullable_num,
                    "exclusiveMinimum": 0,
                    "description": "seconds a run may take",
                },
                "delay": {**nullable_num, "minimum": 0, "description": "seconds before it runs"},
                "id": {
                    "type": ["string", "null"],
                    "description": "your own id; enqueueing a known id again is a no-op",
                },
            },
        },
        "BatchRequest": {
            "type": "object",
            "required": ["tasks"],
            "additionalProperties": False,
            "properties": {
                "tasks": {"type": "array", "maxItems": max_batch, "items": _ref("TaskRequest")}
            },
        },
        "RequeueRequest": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["ids"],
                    "additionalProperties": False,
                    "properties": {
                        "ids": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": max_batch,
                            "items": {"type": "string", "minLength": 1},
                        },
                        "queue": {"type": "string"},
                    },
                },
                {
                    "type": "object",
                    "required": ["all", "queue"],
                    "additionalProperties": False,
                    "properties": {
                        "all": {"const": True},
                        "queue": {"type": "string"},
                        "task": {"type": "string"},
                        "error": {"type": "string"},
                    },
                },
            ]
        },
        "Created": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
        "CreatedBatch": {
            "type": "object",
            "required": ["ids"],
            "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
        },
        "TaskInfo": {
            "type": "object",
            "required": ["id", "queue", "state"],
            "properties": {
                "id": {"type": "string"},
                "queue": {"type": "string"},
                "state": {
                    "enum": ["pending", "scheduled", "active", "succeeded", "failed", "dead"]
                },
                "name": {"type": "string"},
                "priority": {"type": "string"},
                "args": {"type": "array"},
                "kwargs": obj,
                "attempts": {"type": "integer"},
                "max_retries": {"type": "integer"},
                "result": {},
                "error": {"type": "string"},
                "exc_type": {"type": "string"},
                "traceback": {"type": "string"},
                "reason": {"type": "string"},
                **{
                    k: {"type": "integer"}
                    for k in (
                        "enqueued_at_ms",
                        "lease_deadline_ms",
                        "due_at_ms",
                        "died_at_ms",
                        "finished_at_ms",
                        "result_ttl_ms",
                    )
                },
            },
        },
        "QueueStats": {
            "type": "object",
            "properties": {
                "queue": {"type": "string"},
                "levels": {"type": "array", "items": {"type": "string"}},
                "depth": {"type": "object", "additionalProperties": {"type": "integer"}},
                **{
                    k: {"type": "integer"}
                    for k in (
                        "pending",
                        "scheduled",
                        "active",
                        "dead",
                        "late_rejected",
                        "dead_evicted",
                    )
                },
                "paused": {"type": "boolean"},
            },
        },
        "QueueList": {
            "type": "object",
            "properties": {"queues": {"type": "array", "items": _ref("QueueStats")}},
        },
        "QueueState": {
            "type": "object",
            "properties": {"queue": {"type": "string"}, "paused": {"type": "boolean"}},
        },
        "DeadPage": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": obj},
                "cursor": {
                    "type": ["string", "null"],
                    "description": "pass back for the next page",
                },
            },
        },
        "DeadGroups": {"type": "object", "properties": {"groups": {"type": "array", "items": obj}}},
        "Requeued": {"type": "object", "properties": {"requeued": {"type": "integer"}}},
        "Deleted": {"type": "object", "properties": {"deleted": {"type": "integer"}}},
        "Workers": {"type": "object", "properties": {"workers": {"type": "array", "items": obj}}},
        "Stats": {
            "type": "object",
            "description": "fleet metrics: per-stage percentiles per "
            "window, counters with rates, queue depths",
            "properties": {
                "processes": {"type": "integer"},
                "stages": obj,
                "counters": obj,
                "depths": {"type": "array"},
            },
        },
        "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
    }
